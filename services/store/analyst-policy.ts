/**
 * What an analyst's statement may do, decided on ClickHouse's own AST (the text of `EXPLAIN AST`
 * over the statement ClickHouse itself formatted), never on the analyst's text. Pure: no I/O.
 *
 * Everything is an allow-list: statement kinds, AST node kinds, tables, table functions, scalar
 * and aggregate functions (by the engine's own categories), output formats. Whatever is not named
 * here is refused, so syntax this module does not know fails closed.
 */

export const ClickHouseErrorCode = {
  syntax: { code: 62, name: "SYNTAX_ERROR" },
  readonly: { code: 164, name: "READONLY" },
  accessDenied: { code: 497, name: "ACCESS_DENIED" },
  unknownTable: { code: 60, name: "UNKNOWN_TABLE" },
  unknownDatabase: { code: 81, name: "UNKNOWN_DATABASE" },
  unknownFormat: { code: 73, name: "UNKNOWN_FORMAT" },
  unknownFunction: { code: 46, name: "UNKNOWN_FUNCTION" },
} as const;

/** One node of `EXPLAIN AST` output: its kind, the rest of its line, its children. */
export interface AstNode {
  kind: string;
  /** The text after the kind, without ` (alias …)` and ` (children N)`. */
  label: string;
  children: AstNode[];
}

/** Parses the indented tree `EXPLAIN AST` prints (one node a line, one space of indent a level). */
export function parseExplainAst(text: string): AstNode {
  const root: AstNode = { kind: "", label: "", children: [] };
  const stack: { depth: number; node: AstNode }[] = [{ depth: -1, node: root }];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const depth = line.length - line.trimStart().length;
    const body = line.trim();
    const space = body.indexOf(" ");
    const kind = space === -1 ? body : body.slice(0, space);
    // The shortest label: a name that contains " (alias " or " (children " can only shorten it,
    // and a shortened name of something forbidden is never an allowed name.
    const rest = space === -1 ? "" : body.slice(space + 1);
    const label = /^(.*?)(?: ?\(alias .*\))?(?: ?\(children \d+\))?$/.exec(rest)?.[1] ?? rest;
    const node: AstNode = { kind, label, children: [] };
    while ((stack[stack.length - 1] as { depth: number }).depth >= depth) stack.pop();
    (stack[stack.length - 1] as { node: AstNode }).node.children.push(node);
    stack.push({ depth, node });
  }
  if (root.children.length !== 1) throw new Error(`EXPLAIN AST gave ${root.children.length} statements`);
  return root.children[0] as AstNode;
}

/** A function as `system.functions` lists it. */
export interface FunctionEntry {
  name: string;
  categories: string;
  aliasTo: string;
  caseInsensitive: boolean;
  isAggregate: boolean;
}

/** Categories of `system.functions` that only compute on their arguments. */
export const ALLOWED_FUNCTION_CATEGORIES = [
  "Aggregate Functions",
  "Arithmetic",
  "Arrays",
  "Bit",
  "Bitmap",
  "Comparison",
  "Conditional",
  "Dates and Times",
  "Distance",
  "Encoding",
  "Financial",
  "Geo",
  "Geo Polygon",
  "Hash",
  "IP Address",
  "JSON",
  "Logical",
  "Map",
  "Mathematical",
  "Null",
  "Random Number",
  "Rounding",
  "String",
  "String Replacement",
  "String Search",
  "String Splitting",
  "Time Window",
  "Tuple",
  "Type Conversion",
  "URL",
  "UUID",
];

/** From the "Other" category, the ones that only compute (no host, settings, files or network). */
export const ALLOWED_OTHER_FUNCTIONS = [
  "bar",
  "blockSize",
  "byteSize",
  "countDigits",
  "currentDatabase",
  "defaultValueOfArgumentType",
  "defaultValueOfTypeName",
  "errorCodeToName",
  "finalizeAggregation",
  "formatReadableDecimalSize",
  "formatReadableQuantity",
  "formatReadableSize",
  "formatReadableTimeDelta",
  "getSizeOfEnumType",
  "getSubcolumn",
  "identity",
  "ignore",
  "indexHint",
  "isConstant",
  "isDecimalOverflow",
  "MACNumToString",
  "MACStringToNum",
  "MACStringToOUI",
  "materialize",
  "neighbor",
  "parseReadableSize",
  "parseReadableSizeOrNull",
  "parseReadableSizeOrZero",
  "parseTimeDelta",
  "rowNumberInAllBlocks",
  "rowNumberInBlock",
  "runningDifference",
  "runningDifferenceStartingWithFirstValue",
  "toColumnTypeName",
  "toTypeName",
  "transform",
  "variantElement",
  "variantType",
  "version",
  "visibleWidth",
];

/** Refused even inside an allowed category: they reach beyond their arguments. */
export const DENIED_FUNCTIONS = ["chdb"];

/** Written by the parser for syntax rather than by name (lambdas, `x[1]`, `(a, b)`, CAST). */
const SYNTAX_FUNCTIONS = [
  "lambda",
  "tuple",
  "array",
  "arrayElement",
  "tupleElement",
  "CAST",
  "_CAST",
  "in",
  "notIn",
  "globalIn",
  "globalNotIn",
];

/** Functions whose second argument, when a bare name, is a table (`x IN db.t`). */
const SET_FUNCTIONS = new Set(["in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn", "globalNotNullIn"]);

/** Aggregate combinator suffixes (`sumIf`, `uniqState`, `countDistinct` …), longest first. */
const COMBINATORS = [
  "SimpleState",
  "MergeState",
  "OrDefault",
  "Distinct",
  "Resample",
  "ForEach",
  "ArgMin",
  "ArgMax",
  "OrNull",
  "State",
  "Merge",
  "Array",
  "Map",
  "If",
];

/** Table functions that only generate values; every other one (file, url, s3, remote …) is refused. */
export const ALLOWED_TABLE_FUNCTIONS = ["numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateSeries", "values"];

/**
 * Tables of `system` that reveal nothing of the host (no paths, disks, processes, users, logs).
 * system.tables and system.databases are allowed only without their path columns.
 */
export const ALLOWED_SYSTEM_TABLES = [
  "one",
  "numbers",
  "numbers_mt",
  "zeros",
  "zeros_mt",
  "columns",
  "tables",
  "databases",
  "functions",
  "table_functions",
  "aggregate_function_combinators",
  "data_type_families",
  "formats",
  "time_zones",
  "collations",
  "settings",
  "table_engines",
];

/** Columns of allowed system tables that would show the store's place on disk. */
const PATH_COLUMNS = new Set(["data_paths", "metadata_path", "data_path", "path"]);
const TABLES_WITH_PATHS = new Set(["tables", "databases"]);

/** Output formats: text and binary result encodings only (no schema or template files). */
export const ALLOWED_FORMATS = [
  "TabSeparated",
  "TabSeparatedRaw",
  "TabSeparatedWithNames",
  "TabSeparatedWithNamesAndTypes",
  "TabSeparatedRawWithNames",
  "TabSeparatedRawWithNamesAndTypes",
  "TSV",
  "TSVRaw",
  "TSVWithNames",
  "TSVWithNamesAndTypes",
  "TSVRawWithNames",
  "TSVRawWithNamesAndTypes",
  "Raw",
  "RawWithNames",
  "RawWithNamesAndTypes",
  "CSV",
  "CSVWithNames",
  "CSVWithNamesAndTypes",
  "JSON",
  "JSONStrings",
  "JSONCompact",
  "JSONCompactStrings",
  "JSONColumns",
  "JSONColumnsWithMetadata",
  "JSONCompactColumns",
  "JSONEachRow",
  "JSONLines",
  "NDJSON",
  "JSONStringsEachRow",
  "JSONCompactEachRow",
  "JSONCompactEachRowWithNames",
  "JSONCompactEachRowWithNamesAndTypes",
  "JSONCompactStringsEachRow",
  "JSONCompactStringsEachRowWithNames",
  "JSONCompactStringsEachRowWithNamesAndTypes",
  "JSONObjectEachRow",
  "JSONEachRowWithProgress",
  "JSONStringsEachRowWithProgress",
  "Native",
  "RowBinary",
  "RowBinaryWithNames",
  "RowBinaryWithNamesAndTypes",
  "Values",
  "Vertical",
  "Pretty",
  "PrettyCompact",
  "PrettyCompactMonoBlock",
  "PrettyNoEscapes",
  "PrettySpace",
  "PrettyCompactNoEscapes",
  "PrettySpaceNoEscapes",
  "Markdown",
  "XML",
  "Parquet",
  "Arrow",
  "ArrowStream",
  "ORC",
  "Avro",
  "Null",
  "RawBLOB",
  "LineAsString",
];

/** Statement roots (the first word of `EXPLAIN AST`) that only read. */
const READ_ROOTS = new Set([
  "SelectWithUnionQuery",
  "SelectIntersectExceptQuery",
  "ShowTables",
  "ShowColumns",
  "ShowCreateTableQuery",
  "DescribeQuery",
  "ExistsTableQuery",
  "Explain",
]);

/** EXPLAIN kinds that describe a SELECT without running it. */
const EXPLAIN_KINDS = new Set([
  "EXPLAIN",
  "EXPLAIN AST",
  "EXPLAIN SYNTAX",
  "EXPLAIN PLAN",
  "EXPLAIN PIPELINE",
  "EXPLAIN ESTIMATE",
  "EXPLAIN QUERY TREE",
]);

/** AST node kinds a reading statement is made of; any other kind is refused. */
const NODE_KINDS = new Set([
  "SelectWithUnionQuery",
  "SelectIntersectExceptQuery",
  "SelectQuery",
  "ExpressionList",
  "TablesInSelectQuery",
  "TablesInSelectQueryElement",
  "TableExpression",
  "TableJoin",
  "ArrayJoin",
  "Subquery",
  "WithElement",
  "OrderByElement",
  "InterpolateElement",
  "SampleRatio",
  "Asterisk",
  "QualifiedAsterisk",
  "ColumnsRegexpMatcher",
  "ColumnsListMatcher",
  "QualifiedColumnsRegexpMatcher",
  "QualifiedColumnsListMatcher",
  "ColumnsTransformerList",
  "ColumnsExceptTransformer",
  "ColumnsReplaceTransformer",
  "ColumnsReplaceTransformer::Replacement",
  "ColumnsApplyTransformer",
  "WindowDefinition",
  "WindowListElement",
  "WindowFrame",
  "Literal",
  "Identifier",
  "TableIdentifier",
  "Function",
  "QueryParameter",
]);

export interface AnalystPolicy {
  /** The audit database: unqualified names resolve in it, and it is the only one readable. */
  database: string;
  /** By exact name. */
  functions: ReadonlyMap<string, FunctionEntry>;
  /** Case-insensitive functions by lower-case name (`COUNT`, `Sum`). */
  functionsIgnoringCase: ReadonlyMap<string, FunctionEntry>;
}

/** The policy for one database, over the functions the engine lists in `system.functions`. */
export function analystPolicy(database: string, functions: readonly FunctionEntry[]): AnalystPolicy {
  return {
    database,
    functions: new Map(functions.map((f) => [f.name, f])),
    functionsIgnoringCase: new Map(functions.filter((f) => f.caseInsensitive).map((f) => [f.name.toLowerCase(), f])),
  };
}

/** The facts about an allowed statement that the HTTP answer needs. */
export interface Checked {
  /** The FORMAT the statement names, if any. */
  format?: string;
}

type ErrorKind = (typeof ClickHouseErrorCode)[keyof typeof ClickHouseErrorCode];

/** Thrown by {@link checkStatement}; the store turns it into a StoreError. */
export class AnalystRefusal extends Error {
  constructor(
    message: string,
    readonly kind: ErrorKind,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

function refuse(message: string, kind: ErrorKind = ClickHouseErrorCode.readonly): never {
  throw new AnalystRefusal(`read-only: ${message}`, kind);
}

/** What the statement kind is called in a refusal (`SYSTEM`, `DROP`, `SHOW PROCESSLIST`). */
function statementName(root: AstNode): string {
  if (root.kind === "SYSTEM") return "SYSTEM";
  if (root.kind === "Set") return "SET";
  if (root.kind === "Rename") return "RENAME";
  const words = root.kind
    .replace(/Query.*$/, "")
    .replace(/_.*$/, "")
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .toUpperCase();
  return words || "this statement";
}

/**
 * `SHOW …` forms whose AST root is ShowTables but that read other system tables (MERGES,
 * CLUSTERS, FILESYSTEM CACHES …) are told apart by ClickHouse's own formatting of the statement.
 */
const SHOW_TABLES_FORMS = /^SHOW (?:FULL )?(?:TEMPORARY )?(?:TABLES|DATABASES|DICTIONARIES|(?:CHANGED )?SETTINGS)\b/;

/**
 * Throws an {@link AnalystRefusal} unless the statement only reads what analysts may read.
 * `canonical` is ClickHouse's one-line formatting of the same statement.
 */
export function checkStatement(root: AstNode, policy: AnalystPolicy, canonical: string): Checked {
  if (!READ_ROOTS.has(root.kind)) return refuse(`${statementName(root)} is not allowed`);
  if (root.kind === "ShowTables" && !SHOW_TABLES_FORMS.test(canonical))
    return refuse(`${/^SHOW(?: [A-Z]+){1,2}/.exec(canonical)?.[0] ?? "this SHOW"} is not allowed`);
  let select: AstNode = root;
  const checked: Checked = {};
  if (root.kind === "Explain") {
    if (!EXPLAIN_KINDS.has(root.label)) return refuse(`${root.label} is not allowed`);
    const inner = root.children[0];
    if (!inner || (inner.kind !== "SelectWithUnionQuery" && inner.kind !== "SelectIntersectExceptQuery"))
      return refuse(`EXPLAIN of ${inner ? statementName(inner) : "nothing"} is not allowed`);
    trailing(root.children.slice(1), checked);
    select = inner;
  }
  if (root.kind === "ShowCreateTableQuery" || root.kind === "ExistsTableQuery") {
    checkTable(
      root.children
        .filter((c) => c.kind === "Identifier")
        .map((c) => c.label)
        .join("."),
      policy,
    );
    return checked;
  }
  if (root.kind === "ShowTables" || root.kind === "ShowColumns") {
    // SHOW TABLES [FROM db] and SHOW COLUMNS list names only.
    return checked;
  }
  if (select.kind === "SelectWithUnionQuery" || select.kind === "SelectIntersectExceptQuery") {
    const [body, ...rest] = select.children;
    trailing(rest, checked);
    if (body) walk(body, policy, { readsPathTables: readsPathTables(body) }, undefined);
  } else {
    // DESCRIBE: a table expression.
    for (const child of select.children) walk(child, policy, { readsPathTables: readsPathTables(child) }, select);
  }
  return checked;
}

/** After a statement's body: INTO OUTFILE (a literal), COMPRESSION, SETTINGS, FORMAT. */
function trailing(nodes: AstNode[], checked: Checked): void {
  for (const node of nodes) {
    if (node.kind === "Literal") refuse("INTO OUTFILE is not allowed", ClickHouseErrorCode.accessDenied);
    else if (node.kind === "Set") refuse("SETTINGS is not allowed (the limits are fixed)");
    else if (node.kind === "Identifier") {
      if (!ALLOWED_FORMATS.includes(node.label)) refuse(`FORMAT ${node.label} is not allowed`, ClickHouseErrorCode.unknownFormat);
      checked.format = node.label;
    } else refuse(`${node.kind} is not allowed`);
  }
}

function readsPathTables(node: AstNode): boolean {
  if (node.kind === "TableIdentifier") {
    const [db, table] = splitTable(node.label);
    return db === "system" && TABLES_WITH_PATHS.has(table);
  }
  return node.children.some(readsPathTables);
}

function splitTable(name: string): [string | undefined, string] {
  const dot = name.indexOf(".");
  return dot === -1 ? [undefined, name] : [name.slice(0, dot), name.slice(dot + 1)];
}

function checkTable(name: string, policy: AnalystPolicy): void {
  const [db, table] = splitTable(name);
  if (db === undefined || db === policy.database) return;
  if (db === "system" && ALLOWED_SYSTEM_TABLES.includes(table)) return;
  refuse(
    `table ${name} is not allowed (only the ${policy.database} database and documented system tables)`,
    ClickHouseErrorCode.accessDenied,
  );
}

function walk(node: AstNode, policy: AnalystPolicy, ctx: { readsPathTables: boolean }, parent: AstNode | undefined): void {
  if (!NODE_KINDS.has(node.kind)) {
    if (node.kind === "Set") refuse("SETTINGS is not allowed (the limits are fixed)");
    refuse(`${node.kind} is not allowed`);
  }
  switch (node.kind) {
    case "TableIdentifier":
      checkTable(node.label, policy);
      break;
    case "Function":
      if (parent?.kind === "TableExpression") {
        if (!ALLOWED_TABLE_FUNCTIONS.includes(node.label))
          refuse(`table function ${node.label} is not allowed`, ClickHouseErrorCode.accessDenied);
      } else {
        checkFunction(node.label, policy);
        if (SET_FUNCTIONS.has(node.label)) {
          const set = node.children[0]?.children[1];
          if (set?.kind === "Identifier" && set.label.includes(".")) checkTable(set.label, policy);
        }
      }
      break;
    case "Identifier": {
      const last = node.label.slice(node.label.lastIndexOf(".") + 1);
      if (ctx.readsPathTables && PATH_COLUMNS.has(last))
        refuse(`column ${last} of system tables is not allowed (it shows the store's path)`);
      break;
    }
    case "Asterisk":
    case "QualifiedAsterisk":
    case "ColumnsRegexpMatcher":
    case "ColumnsListMatcher":
    case "QualifiedColumnsRegexpMatcher":
    case "QualifiedColumnsListMatcher":
      if (ctx.readsPathTables) refuse("* over system.tables or system.databases is not allowed (name the columns)");
      break;
  }
  for (const child of node.children) walk(child, policy, ctx, node);
}

function checkFunction(name: string, policy: AnalystPolicy): void {
  if (SYNTAX_FUNCTIONS.includes(name)) return;
  if (allowedFunction(name, policy, 0)) return;
  refuse(`function ${name} is not allowed`, ClickHouseErrorCode.accessDenied);
}

function allowedFunction(name: string, policy: AnalystPolicy, depth: number): boolean {
  if (depth > 4 || DENIED_FUNCTIONS.includes(name)) return false;
  const entry = policy.functions.get(name) ?? caseInsensitive(name, policy);
  if (entry) {
    if (entry.aliasTo) return allowedFunction(entry.aliasTo, policy, depth + 1);
    return ALLOWED_FUNCTION_CATEGORIES.includes(entry.categories) || ALLOWED_OTHER_FUNCTIONS.includes(entry.name);
  }
  // An aggregate with combinators: sumIf, uniqMergeState, countDistinct …
  for (const suffix of COMBINATORS) {
    if (name.length > suffix.length && name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const baseEntry = policy.functions.get(base) ?? caseInsensitive(base, policy);
      if (baseEntry?.isAggregate && allowedFunction(base, policy, depth + 1)) return true;
      if (!baseEntry && allowedFunction(base, policy, depth + 1)) return true;
    }
  }
  return false;
}

function caseInsensitive(name: string, policy: AnalystPolicy): FunctionEntry | undefined {
  return policy.functionsIgnoringCase.get(name.toLowerCase());
}

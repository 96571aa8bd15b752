import { StoreError } from "../errors/index.ts";

/**
 * Statement kinds (root of ClickHouse's own AST, from `EXPLAIN AST`) that only read.
 * Everything else (INSERT, CREATE, ALTER, DROP, TRUNCATE, OPTIMIZE, SET, SYSTEM, KILL,
 * GRANT, RENAME, ...) is refused.
 */
const READ_ONLY_ROOTS = [
  "SelectWithUnionQuery",
  "SelectIntersectExceptQuery",
  "SelectQuery",
  "ShowTables",
  "ShowCreate",
  "ShowColumns",
  "ShowIndex",
  "Describe",
  "Exists",
  "Explain",
];

export const READ_ONLY_HINT = "only read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN) are allowed here";

/**
 * Makes one statement out of an analyst's text: comments removed, trailing semicolons dropped.
 * Refuses more than one statement and `INTO OUTFILE` before anything reaches the engine.
 * Lexes ClickHouse SQL just enough to know what is inside string literals, quoted identifiers
 * and comments.
 */
export function singleStatement(sql: string): string {
  let out = "";
  let i = 0;
  let sawEnd = false;
  while (i < sql.length) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === "-" && next === "-") {
      const end = sql.indexOf("\n", i);
      i = end === -1 ? sql.length : end;
      out += " ";
      continue;
    }
    if (c === "/" && next === "*") {
      const end = sql.indexOf("*/", i + 2);
      if (end === -1) throw new StoreError("the statement has an unterminated /* comment");
      i = end + 2;
      out += " ";
      continue;
    }
    if (c === "'" || c === '"' || c === "`") {
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === "\\") j += 2;
        else if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j++;
      }
      if (j >= sql.length) throw new StoreError(`the statement has an unterminated ${c === "'" ? "string" : "quoted identifier"}`);
      if (sawEnd) throw new StoreError(`only one statement at a time; ${READ_ONLY_HINT}`);
      out += sql.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === ";") {
      sawEnd = true;
      i++;
      continue;
    }
    if (sawEnd && !/\s/.test(c)) throw new StoreError(`only one statement at a time; ${READ_ONLY_HINT}`);
    out += c;
    i++;
  }
  const statement = out.trim();
  if (statement === "") throw new StoreError("the statement is empty");
  if (/\bINTO\s+OUTFILE\b/i.test(statement.replace(/'(?:[^'\\]|\\.|'')*'/g, "''"))) {
    throw new StoreError(`INTO OUTFILE writes files; ${READ_ONLY_HINT}`);
  }
  return statement;
}

/** Whether the first line of `EXPLAIN AST` output names a statement that only reads. */
export function isReadOnlyRoot(explainFirstLine: string): boolean {
  const root = explainFirstLine.trim().split(/\s/)[0] ?? "";
  return READ_ONLY_ROOTS.some((r) => root.startsWith(r));
}

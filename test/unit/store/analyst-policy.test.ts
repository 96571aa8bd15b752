// The analyst guard's decisions on ClickHouse's own EXPLAIN AST text (captured from chDB 26.7).
import { describe, expect, it } from "vitest";
import {
  AnalystRefusal,
  analystPolicy,
  checkStatement,
  parseExplainAst,
  type FunctionEntry,
} from "../../../services/store/analyst-policy.ts";

const fn = (name: string, categories: string, extra: Partial<FunctionEntry> = {}): FunctionEntry => ({
  name,
  categories,
  aliasTo: "",
  caseInsensitive: false,
  isAggregate: false,
  ...extra,
});
const policy = analystPolicy("lineage", [
  fn("sum", "Aggregate Functions", { caseInsensitive: true, isAggregate: true }),
  fn("count", "Aggregate Functions", { caseInsensitive: true, isAggregate: true }),
  fn("greater", "Comparison"),
  fn("toString", "Type Conversion"),
  fn("file", "Other"),
  fn("hostName", "Other"),
  fn("hostname", "", { aliasTo: "hostName" }),
  fn("toTypeName", "Other"),
  fn("chdb", "String"),
]);

function verdict(ast: string, canonical = "SELECT …"): string {
  try {
    const checked = checkStatement(parseExplainAst(ast), policy, canonical);
    return `ok${checked.format ? ` ${checked.format}` : ""}`;
  } catch (error) {
    if (error instanceof AnalystRefusal) return `${error.kind.code} ${error.message}`;
    throw error;
  }
}

const select = (expr: string, from = "") =>
  [
    "SelectWithUnionQuery (children 1)",
    " ExpressionList (children 1)",
    `  SelectQuery (children ${from ? 2 : 1})`,
    "   ExpressionList (children 1)",
    ...expr.split("\n").map((l) => `    ${l}`),
    ...(from
      ? [
          "   TablesInSelectQuery (children 1)",
          "    TablesInSelectQueryElement (children 1)",
          "     TableExpression (children 1)",
          ...from.split("\n").map((l) => `      ${l}`),
        ]
      : []),
  ].join("\n");

describe("the analyst policy", () => {
  it("parses EXPLAIN AST into a tree, keeping names and dropping aliases and child counts", () => {
    const tree = parseExplainAst(
      select("Function sumIf (alias s) (children 1)\n ExpressionList", "TableIdentifier lineage.events_v1 (alias e)"),
    );
    expect(tree.kind).toBe("SelectWithUnionQuery");
    const query = tree.children[0]?.children[0];
    expect(query?.children[0]?.children[0]).toMatchObject({ kind: "Function", label: "sumIf" });
    expect(query?.children[1]?.children[0]?.children[0]?.children[0]).toMatchObject({
      kind: "TableIdentifier",
      label: "lineage.events_v1",
    });
  });

  it("allows reads of the audit database with computing functions, combinators and case-insensitive names", () => {
    expect(verdict(select("Function sumIf (children 1)\n ExpressionList", "TableIdentifier events_v1"))).toBe("ok");
    expect(verdict(select("Function COUNT (children 1)\n ExpressionList", "TableIdentifier lineage.events_v1"))).toBe("ok");
    expect(verdict(select("Function toTypeName (children 1)\n ExpressionList", "Function numbers (children 1)\n ExpressionList"))).toBe(
      "ok",
    );
    expect(verdict(`${select("Literal UInt64_1")}\n Identifier JSONEachRow`)).toBe("ok JSONEachRow");
  });

  it("refuses what reaches beyond the arguments, the audit database or the read-only statements", () => {
    expect(verdict("SYSTEM query")).toBe("164 read-only: SYSTEM is not allowed");
    expect(verdict("DropQuery  events_v1 (children 1)\n Identifier events_v1")).toBe("164 read-only: DROP is not allowed");
    expect(verdict("ShowProcesslistQuery")).toBe("164 read-only: SHOW PROCESSLIST is not allowed");
    expect(verdict("ShowTables", "SHOW MERGES")).toBe("164 read-only: SHOW MERGES is not allowed");
    expect(verdict("ShowTables", "SHOW FILESYSTEM CACHES")).toBe("164 read-only: SHOW FILESYSTEM CACHES is not allowed");
    expect(verdict("ShowTables (children 1)\n Identifier system", "SHOW FULL TABLES FROM system")).toBe("ok");
    expect(verdict("ShowTables", "SHOW DATABASES")).toBe("ok");
    expect(verdict(select("Function file (children 1)\n ExpressionList"))).toBe("497 read-only: function file is not allowed");
    expect(verdict(select("Function hostname (children 1)\n ExpressionList"))).toBe("497 read-only: function hostname is not allowed");
    expect(verdict(select("Function chdb (children 1)\n ExpressionList"))).toBe("497 read-only: function chdb is not allowed");
    expect(verdict(select("Function fileIf (children 1)\n ExpressionList"))).toBe("497 read-only: function fileIf is not allowed");
    expect(verdict(select("Function FILE (children 1)\n ExpressionList"))).toBe("497 read-only: function FILE is not allowed");
    expect(verdict(select("Asterisk", "Function url (children 1)\n ExpressionList"))).toBe(
      "497 read-only: table function url is not allowed",
    );
    expect(verdict(select("Asterisk", "TableIdentifier system.disks"))).toMatch(/^497 read-only: table system\.disks is not allowed/);
    expect(verdict(select("Asterisk", "TableIdentifier other.t"))).toMatch(/^497 read-only: table other\.t is not allowed/);
    expect(verdict(select("Asterisk", "TableIdentifier system.tables"))).toMatch(/^164 read-only: \* over system\.tables/);
    expect(verdict(select("Identifier metadata_path", "TableIdentifier system.databases"))).toMatch(/column metadata_path/);
    expect(verdict(`${select("Literal UInt64_1")}\n Literal '/tmp/x'`)).toBe("497 read-only: INTO OUTFILE is not allowed");
    expect(verdict(`${select("Literal UInt64_1")}\n Set`)).toMatch(/^164 read-only: SETTINGS is not allowed/);
    expect(verdict(`${select("Literal UInt64_1")}\n Identifier Protobuf`)).toBe("73 read-only: FORMAT Protobuf is not allowed");
    expect(verdict(select("SomethingNew"))).toBe("164 read-only: SomethingNew is not allowed");
    expect(verdict("Explain EXPLAIN AST (children 1)\n InsertQuery   (children 1)\n  Identifier t")).toBe(
      "164 read-only: EXPLAIN of INSERT is not allowed",
    );
  });

  it("does not take a forbidden name for an allowed one when an alias imitates the AST's own words", () => {
    expect(verdict(select("Function file (alias x (children 3)) (children 1)\n ExpressionList"))).toBe(
      "497 read-only: function file is not allowed",
    );
    expect(verdict(select("Asterisk", "TableIdentifier system.disks (alias one)"))).toMatch(/table system\.disks is not allowed/);
  });
});

// Parsing Canonical Form for Avro schemas (Avro specification, "Transforming into
// Parsing Canonical Form"). Written against the raw JSON schema so that the fingerprint
// does not depend on how a library normalises names.

import { SchemaError } from "../errors/index.ts";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const PRIMITIVES = new Set(["null", "boolean", "int", "long", "float", "double", "bytes", "string"]);
const KEY_ORDER = ["name", "type", "fields", "symbols", "items", "values", "size"] as const;

/** Returns the Parsing Canonical Form of a schema given as JSON text or as a parsed value. */
export function parsingCanonicalForm(schema: string | Json): string {
  const parsed: Json = typeof schema === "string" ? parseSchemaText(schema) : schema;
  return canonical(parsed, "", new Set());
}

function parseSchemaText(text: string): Json {
  // A bare primitive name such as `int` (or `null`, which JSON would read as null) is a schema text too.
  const bare = text.trim();
  if (PRIMITIVES.has(bare)) return bare;
  try {
    return JSON.parse(text) as Json;
  } catch {
    throw new SchemaError("schema text is not valid JSON", { context: { length: text.length } });
  }
}

function fullName(name: string, namespace: string): string {
  if (name.includes(".") || namespace === "") return name;
  return `${namespace}.${name}`;
}

function canonical(schema: Json, namespace: string, seen: Set<string>): string {
  if (typeof schema === "string") {
    if (PRIMITIVES.has(schema)) return JSON.stringify(schema);
    return JSON.stringify(fullName(schema, namespace));
  }
  if (Array.isArray(schema)) {
    return `[${schema.map((branch) => canonical(branch, namespace, seen)).join(",")}]`;
  }
  if (schema === null || typeof schema !== "object") {
    throw new SchemaError("schema must be a string, an array or an object", { context: { found: typeof schema } });
  }
  const type = schema["type"];
  if (typeof type !== "string") {
    // e.g. {"type": {"type": "array", ...}}: the outer object adds nothing that parses.
    if (type === undefined) throw new SchemaError("schema object has no type");
    return canonical(type, namespace, seen);
  }
  if (PRIMITIVES.has(type)) return JSON.stringify(type);

  const named = type === "record" || type === "error" || type === "enum" || type === "fixed";
  let ns = namespace;
  const parts: string[] = [];
  for (const key of KEY_ORDER) {
    const value = schema[key];
    if (value === undefined) continue;
    if (key === "name") {
      if (!named || typeof value !== "string") continue;
      const explicitNs = typeof schema["namespace"] === "string" ? schema["namespace"] : undefined;
      const name = value.includes(".") ? value : fullName(value, explicitNs ?? namespace);
      ns = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "";
      if (seen.has(name)) return JSON.stringify(name);
      seen.add(name);
      parts.push(`"name":${JSON.stringify(name)}`);
    } else if (key === "type") {
      parts.push(`"type":${JSON.stringify(type)}`);
    } else if (key === "fields" && Array.isArray(value)) {
      const fields = value.map((field) => {
        if (field === null || typeof field !== "object" || Array.isArray(field)) {
          throw new SchemaError("record field must be an object");
        }
        const fieldType = field["type"];
        if (fieldType === undefined)
          throw new SchemaError("record field has no type", { context: { field: JSON.stringify(field["name"] ?? null) } });
        return `{"name":${JSON.stringify(field["name"])},"type":${canonical(fieldType, ns, seen)}}`;
      });
      parts.push(`"fields":[${fields.join(",")}]`);
    } else if (key === "symbols" && Array.isArray(value)) {
      parts.push(`"symbols":[${value.map((s) => JSON.stringify(s)).join(",")}]`);
    } else if (key === "items" || key === "values") {
      parts.push(`"${key}":${canonical(value, ns, seen)}`);
    } else if (key === "size") {
      parts.push(`"size":${Number(value)}`);
    }
  }
  return `{${parts.join(",")}}`;
}

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createTaxonomy, type Taxonomy, type TaxonomyData } from "./taxonomy.ts";

/**
 * The fideslang default taxonomy (Ethyca, CC BY 4.0), shipped in schemas/taxonomy/fideslang.json.
 * Read once at start-up; matching itself does no I/O.
 */
export function loadFideslangTaxonomy(
  path: string = fileURLToPath(new URL("../../schemas/taxonomy/fideslang.json", import.meta.url)),
): Taxonomy {
  return createTaxonomy(JSON.parse(readFileSync(path, "utf8")) as TaxonomyData);
}

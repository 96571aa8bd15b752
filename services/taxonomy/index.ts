export { covers, coveredByAny, createTaxonomy, TaxonomyKind } from "./taxonomy.ts";
export type { Taxonomy, TaxonomyData, TaxonomyEntry } from "./taxonomy.ts";
export { loadFideslangTaxonomy } from "./fideslang.ts";

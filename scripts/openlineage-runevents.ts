// The RunEvents of the OpenLineage benchmark (scripts/bench-openlineage.ts), also posted by the
// intake journal's crash test: no imports of the auditor, so the test (the TypeScript sources)
// and the benchmark (the compiled dist/ that serve runs) share them.

export const FIELDS = 20;
export const DATASETS = 500;
export const PRODUCER = "https://github.com/lineage-audit/lineage-audit/scripts/bench-openlineage.ts";

export const field = (i: number) => `f${String(i).padStart(2, "0")}`;
export const dataset = (i: number) => ({ namespace: "warehouse", name: `bench.table_${i % DATASETS}` });

/**
 * RunEvent i: table_i → table_{i+1}, 20 columns, every fifth a masking TRANSFORMATION, the rest
 * IDENTITY; with the output's statistics of the run (rows and bytes written), which change from run
 * to run as they do in dbt's and Spark's events while the schema and column lineage stay the same.
 */
export function runEventBytes(i: number): Buffer {
  const input = dataset(i);
  const output = dataset(i + 1);
  const schema = { _producer: PRODUCER, _schemaURL: "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json" };
  const fields = Object.fromEntries(
    Array.from({ length: FIELDS }, (_, f) => [
      field(f),
      {
        inputFields: [
          {
            ...input,
            field: field(f),
            transformations: [
              f % 5 === 0 ? { type: "DIRECT", subtype: "TRANSFORMATION", masking: true } : { type: "DIRECT", subtype: "IDENTITY" },
            ],
          },
        ],
      },
    ]),
  );
  const hex = i.toString(16).padStart(12, "0");
  return Buffer.from(
    JSON.stringify({
      eventType: "COMPLETE",
      eventTime: new Date(Date.UTC(2019, 5, 1) + i * 1000).toISOString(),
      producer: PRODUCER,
      schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
      run: { runId: `0190d8a0-1c2b-7c3d-8e4f-${hex}` },
      job: { namespace: "bench-jobs", name: `job_${i % 1000}` },
      inputs: [
        {
          ...input,
          facets: { schema: { ...schema, fields: Array.from({ length: FIELDS }, (_, f) => ({ name: field(f), type: "VARCHAR" })) } },
        },
      ],
      outputs: [
        {
          ...output,
          facets: {
            columnLineage: {
              _producer: PRODUCER,
              _schemaURL: "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
              fields,
            },
          },
          outputFacets: {
            outputStatistics: {
              _producer: PRODUCER,
              _schemaURL: "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json",
              rowCount: 1000 + ((i * 7919) % 100_000),
              size: 64_000 + ((i * 104_729) % 10_000_000),
            },
          },
        },
      ],
    }),
  );
}

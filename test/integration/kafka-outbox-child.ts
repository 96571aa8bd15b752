// A processor instance that stops dead after storing a batch with lineage facts and before it
// can publish them: the parent test SIGKILLs it there. Run with `node --import tsx`.
import { openStore } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { startKafkaProcessor } from "../../services/kafka/index.ts";
import { core } from "./helpers.ts";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const { taxonomy, policy, codec } = core();
const store = await openStore({ path: env("STORE_PATH"), database: env("DATABASE") });
await store.migrate();
const processor = createProcessor(
  { policy, taxonomy, codec },
  {
    sink: {
      async write(batch) {
        await store.write(batch);
        if (batch.facts.length > 0) {
          process.stdout.write(`stored ${batch.facts.length} facts\n`);
          await new Promise(() => undefined); // never returns: the publish that follows never happens
        }
      },
    },
  },
);
await startKafkaProcessor(
  {
    brokers: env("BROKERS").split(","),
    clientId: "outbox-child",
    topics: { events: env("TOPIC_EVENTS"), deadLetters: env("TOPIC_DLQ"), lineage: env("TOPIC_LINEAGE") },
  },
  { instanceId: "child", groupId: env("GROUP"), sessionTimeoutMs: 6000 },
  { processor, codec, store },
);
process.stdout.write("consuming\n");

export { createEmitter, createEventBuilder, defaultEmitterOptions, routingKey, uuidv7 } from "./emitter.ts";
export { createPseudonymizer, MIN_KEY_BYTES } from "./pseudonymize.ts";
export type { Pseudonymizer } from "./pseudonymize.ts";
export { createInProcessTransport, createHttpTransport, createMemoryTransport } from "./transports.ts";
export type { HttpTransportOptions, MessageProcessor } from "./transports.ts";
export type { Emitter, EmitterOptions, EmitterStats, EmitInput, DatasetInput, Transport, SendResult, OutboundMessage } from "./types.ts";

// A Tributary subscriber in JavaScript: kafkajs and Ajv.
//
// Reads TOPICs in consumer group GROUP (kafkajs reads committed records only by default:
// `readUncommitted: false`, Kafka's read_committed). Each record is a CloudEvent in binary
// content mode: attributes in `ce_*` headers, `data` as the JSON value. Its `data` is
// validated against the JSON Schema its `dataschema` names, fetched once per schema from
// SCHEMAS (a gateway's `/v1/schemas` URL, or the repository's `schemas/published` folder);
// duplicates are dropped by CloudEvents (source, id). It stops after IDLE_MS without a new
// record, commits, and prints one JSON line: what it read, and anything invalid.
//
//   node subscriber.mjs --bootstrap localhost:9092 --group my-service \
//     --schemas http://localhost:8080/v1/schemas demo.events.counted demo.jobs.events

import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import Ajv2020 from "ajv/dist/2020.js";
import { Kafka, logLevel } from "kafkajs";

const { values: opts, positionals: topics } = parseArgs({
  options: {
    bootstrap: { type: "string" },
    group: { type: "string" },
    schemas: { type: "string" },
    "idle-ms": { type: "string", default: "8000" },
    "timeout-ms": { type: "string", default: "120000" },
  },
  allowPositionals: true,
});

const URN = "urn:tributary:schema:";
const ajv = new Ajv2020({ strict: false, validateFormats: false });
const validators = new Map();

async function validatorFor(dataschema) {
  if (!validators.has(dataschema)) {
    if (!dataschema.startsWith(URN)) throw new Error(`unknown dataschema ${dataschema}`);
    const name = dataschema.slice(URN.length);
    const cut = name.lastIndexOf(":");
    const [type, version] = [name.slice(0, cut), name.slice(cut + 1)];
    let schema;
    if (/^https?:\/\//.test(opts.schemas)) {
      const answer = await fetch(`${opts.schemas.replace(/\/$/, "")}/${type}/${version}`);
      if (!answer.ok) throw new Error(`schema ${dataschema}: HTTP ${answer.status}`);
      schema = await answer.json();
    } else {
      schema = JSON.parse(await readFile(`${opts.schemas}/${type}/${version}.json`, "utf8"));
    }
    validators.set(dataschema, ajv.compile(schema));
  }
  return validators.get(dataschema);
}

// A Kafka record in binary content mode -> { attributes, data }.
function cloudEvent(message) {
  const attributes = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (name.startsWith("ce_") && value != null) attributes[name.slice(3)] = value.toString();
  }
  for (const required of ["specversion", "id", "source", "type", "subject", "time", "dataschema"]) {
    if (!(required in attributes)) throw new Error(`no ${required} attribute`);
  }
  if (attributes.specversion !== "1.0") throw new Error(`specversion ${attributes.specversion}`);
  return { attributes, data: JSON.parse(message.value.toString()) };
}

const kafka = new Kafka({ clientId: "example-subscriber", brokers: [opts.bootstrap], logLevel: logLevel.ERROR });
const consumer = kafka.consumer({ groupId: opts.group });
const read = Object.fromEntries(topics.map((t) => [t, 0]));
const types = {};
const seen = new Set();
const invalid = [];
let duplicates = 0;
let last = Date.now();

await consumer.connect();
await consumer.subscribe({ topics, fromBeginning: true });
await consumer.run({
  // Offsets are committed after each message is handled: at-least-once, hence the dedup.
  eachMessage: async ({ topic, partition, message }) => {
    last = Date.now();
    read[topic] += 1;
    try {
      const { attributes, data } = cloudEvent(message);
      const validate = await validatorFor(attributes.dataschema);
      if (!validate(data)) throw new Error(ajv.errorsText(validate.errors));
      // A bumped type is written twice (same id, one per version) for a while: a service
      // reads the version it knows; this example reads both, so its dedup key has the version.
      const identity = `${attributes.source}\u0000${attributes.id}\u0000${attributes.dataschema}`;
      if (seen.has(identity)) {
        duplicates += 1;
      } else {
        seen.add(identity);
        types[attributes.type] = (types[attributes.type] ?? 0) + 1;
      }
    } catch (error) {
      invalid.push({ at: `${topic}:${partition}:${message.offset}`, error: String(error.message).slice(0, 300) });
    }
  },
});

const started = Date.now();
while (Date.now() - last < Number(opts["idle-ms"]) && Date.now() - started < Number(opts["timeout-ms"])) {
  await new Promise((resolve) => setTimeout(resolve, 250));
}
await consumer.disconnect();
console.log(JSON.stringify({ read, types, duplicates, invalid: invalid.slice(0, 20), invalid_count: invalid.length }));
process.exit(invalid.length ? 1 : 0);

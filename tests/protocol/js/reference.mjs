// The JavaScript side of our interop tests: canonical JSON and Ed25519 exactly as the JS
// Lobstah nodes do them (sort every object's keys with the default sort, JSON.stringify,
// sign the UTF-8 bytes with node:crypto). It is test tooling, not part of the package.
//
//   node reference.mjs canonical   one JSON value per stdin line -> its canonical JSON per line
//   node reference.mjs verify      one {"pubkey","message","signature"} per line -> ok|bad
//   node reference.mjs vectors     golden vectors: receipts, announcements, unannounce, request
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { createInterface } from "node:readline";

const sortKeys = (value) => {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const sorted = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]);
    return sorted;
  }
  return value;
};
const canonicalize = (value) => JSON.stringify(sortKeys(value));

// PKCS#8 / SPKI DER prefixes for a raw 32-byte Ed25519 seed / public key.
const privateKey = (seedHex) =>
  createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(seedHex, "hex")]),
    format: "der",
    type: "pkcs8",
  });
const publicKeyOf = (pubkey) =>
  createPublicKey({
    key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(pubkey.slice(4), "hex")]),
    format: "der",
    type: "spki",
  });
const pubkeyOf = (seedHex) =>
  "lob1" + createPublicKey(privateKey(seedHex)).export({ format: "der", type: "spki" }).subarray(12).toString("hex");
const signHex = (seedHex, text) => sign(null, Buffer.from(text, "utf8"), privateKey(seedHex)).toString("hex");

const lines = async (handle) => {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim()) process.stdout.write(handle(JSON.parse(line)) + "\n");
  }
};

const vectors = () => {
  const workerSeed = "11".repeat(32);
  const requesterSeed = "22".repeat(32);
  const worker = pubkeyOf(workerSeed);
  const requester = pubkeyOf(requesterSeed);
  const receipt = {
    version: 1,
    jobId: "chatcmpl-7f3a",
    nonce: "00112233445566778899aabbccddeeff",
    requesterPubkey: requester,
    workerPubkey: worker,
    model: "llama3.2:3b",
    inputTokens: 1234,
    outputTokens: 56,
    startedAt: 1767225600000,
    completedAt: 1767225601234,
  };
  const anonymousReceipt = { ...receipt, nonce: "ffeeddccbbaa99887766554433221100", requesterPubkey: "anonymous" };
  const announcement = {
    version: 1,
    pubkey: worker,
    url: "http://mac-mini.example:17474",
    label: "kitchen mac mini \u{1F99E}",
    models: ["llama3.2:3b", "qwen2.5:7b"],
    tier: "interactive",
    ttlSeconds: 300,
    announcedAt: 1767225600000,
  };
  const signed = (key, body) => ({ [key]: body, signature: signHex(workerSeed, canonicalize(body)) });
  const body = JSON.stringify({ model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }] });
  const digest = createHash("sha256").update(body, "utf8").digest("hex");
  const requestMessage = `lobstah-request:v1:POST:/v1/chat/completions:1767225600000:${digest}`;
  return {
    workerSeed,
    requesterSeed,
    workerPubkey: worker,
    requesterPubkey: requester,
    receipt: { canonical: canonicalize(receipt), signed: signed("receipt", receipt) },
    anonymousReceipt: { canonical: canonicalize(anonymousReceipt), signed: signed("receipt", anonymousReceipt) },
    announcement: { canonical: canonicalize(announcement), signed: signed("announcement", announcement) },
    unannounce: { pubkey: worker, timestamp: 1767225600000, signature: signHex(workerSeed, `unannounce:${worker}:1767225600000`) },
    request: { body, timestamp: 1767225600000, signature: signHex(requesterSeed, requestMessage) },
  };
};

const mode = process.argv[2];
if (mode === "canonical") await lines(canonicalize);
else if (mode === "verify")
  await lines(({ pubkey, message, signature }) =>
    verify(null, Buffer.from(message, "utf8"), publicKeyOf(pubkey), Buffer.from(signature, "hex")) ? "ok" : "bad");
else if (mode === "vectors") process.stdout.write(JSON.stringify(vectors(), null, 2) + "\n");
else {
  process.stderr.write("usage: node reference.mjs canonical|verify|vectors\n");
  process.exit(2);
}

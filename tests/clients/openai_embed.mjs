// Runs the official `openai` npm client's embeddings.create against a
// sembed server, as an application would, and prints the vectors as JSON.
//   node openai_embed.mjs BASE_URL default|float TEXTS_JSON
// "default" leaves encoding_format unset: the client then asks for base64
// and decodes it itself. The request body the client sent is captured
// through its fetch option, so the test can check which format it asked for.
import OpenAI from "openai";

const [baseURL, mode, textsJson] = process.argv.slice(2);
let sent = null;
const client = new OpenAI({
  baseURL,
  apiKey: "unused",
  maxRetries: 0,
  fetch: async (url, init) => {
    if (init && typeof init.body === "string") sent = JSON.parse(init.body);
    return fetch(url, init);
  },
});
const params = { model: "use-lite", input: JSON.parse(textsJson) };
if (mode === "float") params.encoding_format = "float";
const res = await client.embeddings.create(params);
process.stdout.write(JSON.stringify({
  vectors: res.data.map((d) => Array.from(d.embedding)),
  sent_encoding_format: sent ? sent.encoding_format : null,
}));

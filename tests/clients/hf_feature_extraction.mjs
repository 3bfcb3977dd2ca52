// Runs Hugging Face's JS client (@huggingface/inference) featureExtraction
// against a sembed server as a text-embeddings-inference endpoint, and
// prints the vectors as JSON.
//   node hf_feature_extraction.mjs ENDPOINT_URL API_KEY TEXTS_JSON
// In this version (4.x) a custom endpoint is InferenceClient(key)
// .endpoint(URL): the client then POSTs {"inputs": ...} to URL itself
// (TEI's POST /), with "Authorization: Bearer KEY", and asks the Hub for
// nothing. One call with the list of texts, one with a single string. The
// requests are recorded through the client's fetch option.
import { InferenceClient } from "@huggingface/inference";

const [endpoint, apiKey, textsJson] = process.argv.slice(2);
const texts = JSON.parse(textsJson);
const sent = [];
const client = new InferenceClient(apiKey, {
  fetch: async (url, init) => {
    sent.push({ url: String(url), body: init && typeof init.body === "string" ? JSON.parse(init.body) : null });
    return fetch(url, init);
  },
}).endpoint(endpoint);
const batch = await client.featureExtraction({ inputs: texts });
const single = await client.featureExtraction({ inputs: texts[0] });
process.stdout.write(JSON.stringify({ batch, single, sent }));

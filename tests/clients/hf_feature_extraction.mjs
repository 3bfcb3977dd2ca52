// Runs Hugging Face's JS client (@huggingface/inference) featureExtraction
// against a sembed server as a text-embeddings-inference endpoint, and
// prints the vectors as JSON.
//   node hf_feature_extraction.mjs ENDPOINT_URL API_KEY TEXTS_JSON [WRONG_KEY]
// In this version (4.x) a custom endpoint is InferenceClient(key)
// .endpoint(URL): the client then POSTs {"inputs": ...} to URL itself
// (TEI's POST /), with "Authorization: Bearer KEY", and asks the Hub for
// nothing. One call with the list of texts, one with a single string. The
// requests are recorded through the client's fetch option. With
// WRONG_KEY, one more call with that key must fail: its error message is
// printed as wrong_key_error.
import { InferenceClient } from "@huggingface/inference";

const [endpoint, apiKey, textsJson, wrongKey] = process.argv.slice(2);
const texts = JSON.parse(textsJson);
const sent = [];
const make = (key) => new InferenceClient(key, {
  fetch: async (url, init) => {
    sent.push({ url: String(url), body: init && typeof init.body === "string" ? JSON.parse(init.body) : null });
    return fetch(url, init);
  },
}).endpoint(endpoint);
const client = make(apiKey);
const batch = await client.featureExtraction({ inputs: texts });
const single = await client.featureExtraction({ inputs: texts[0] });
let wrong_key_error = null;
if (wrongKey) {
  const n = sent.length;
  try {
    await make(wrongKey).featureExtraction({ inputs: texts[0] });
    wrong_key_error = "(no error)";
  } catch (e) {
    wrong_key_error = String(e && e.message);
  }
  sent.length = n; // the requests above are the ones with the right key
}
process.stdout.write(JSON.stringify({ batch, single, sent, wrong_key_error }));

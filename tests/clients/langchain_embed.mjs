// Runs LangChain's OpenAIEmbeddings (@langchain/openai) against a sembed
// server, as a RAG application would, and prints the vectors as JSON.
//   node langchain_embed.mjs BASE_URL API_KEY MODEL BATCH_SIZE DOCS_JSON QUERY [WRONG_KEY]
// embedDocuments(DOCS) sends the texts BATCH_SIZE at a time (LangChain's
// default is 512, above the server's default --max-client-batch-size);
// embedQuery(QUERY) sends one. The requests the client sent (path, body)
// are recorded through the OpenAI client's fetch option and printed too.
// With WRONG_KEY, one more embedQuery with that key must fail: its error
// message is printed as wrong_key_error.
import { OpenAIEmbeddings } from "@langchain/openai";

const [baseURL, apiKey, model, batchSize, docsJson, query, wrongKey] = process.argv.slice(2);
const sent = [];
const make = (key) => new OpenAIEmbeddings({
  model,
  apiKey: key,
  batchSize: Number(batchSize),
  maxRetries: 0,
  configuration: {
    baseURL,
    fetch: async (url, init) => {
      sent.push({ url: String(url), body: init && typeof init.body === "string" ? JSON.parse(init.body) : null });
      return fetch(url, init);
    },
  },
});
const emb = make(apiKey);
const documents = await emb.embedDocuments(JSON.parse(docsJson));
const q = await emb.embedQuery(query);
let wrong_key_error = null;
if (wrongKey) {
  const n = sent.length;
  try {
    await make(wrongKey).embedQuery(query);
    wrong_key_error = "(no error)";
  } catch (e) {
    wrong_key_error = String(e && e.message);
  }
  sent.length = n; // the requests above are the ones with the right key
}
process.stdout.write(JSON.stringify({ documents, query: q, sent, wrong_key_error }));

// Runs LangChain's OpenAIEmbeddings (@langchain/openai) against a sembed
// server, as a RAG application would, and prints the vectors as JSON.
//   node langchain_embed.mjs BASE_URL API_KEY MODEL BATCH_SIZE DOCS_JSON QUERY
// embedDocuments(DOCS) sends the texts BATCH_SIZE at a time (LangChain's
// default is 512, above the server's default --max-client-batch-size);
// embedQuery(QUERY) sends one. The requests the client sent (path, body)
// are recorded through the OpenAI client's fetch option and printed too.
import { OpenAIEmbeddings } from "@langchain/openai";

const [baseURL, apiKey, model, batchSize, docsJson, query] = process.argv.slice(2);
const sent = [];
const emb = new OpenAIEmbeddings({
  model,
  apiKey,
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
const documents = await emb.embedDocuments(JSON.parse(docsJson));
const q = await emb.embedQuery(query);
process.stdout.write(JSON.stringify({ documents, query: q, sent }));

// The independent reference for AnyBit's tokenizer tests: @lenml/tokenizers (a transformers.js fork) encoding with
// the published tokenizer files of @lenml/tokenizer-*. One process does every tokenizer and every text, so the test
// run pays Node's start-up and the tokenizer loading once.
//
// usage: node reference.js REQUEST.json OUTPUT.json
//   REQUEST: { "tokenizers": ["gemma3", ...], "texts": ["...", ...], "conversation": [{ "role", "content" }, ...] }
//   OUTPUT:  { "<name>": { "ids": [[...]], "idsWithSpecial": [[...]], "decoded": ["..."],
//                          "chatTemplate": "..." | null, "chat": "..." | null, "chatError": "..." | null },
//            "normalized": { "NFC": ["..."], "NFD": [...], "NFKC": [...], "NFKD": [...] } }
"use strict";
const fs = require("fs");
const path = require("path");
const { TokenizerLoader } = require("@lenml/tokenizers");

const [requestPath, outputPath] = process.argv.slice(2);
if (!requestPath || !outputPath) {
  console.error("usage: node reference.js REQUEST.json OUTPUT.json");
  process.exit(2);
}
const request = JSON.parse(fs.readFileSync(requestPath, "utf8"));
const output = {};
for (const name of request.tokenizers) {
  // Load from the package's JSON files (the same files AnyBit reads) rather than its bundled copy.
  const models = path.dirname(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`));
  const read = (file) => JSON.parse(fs.readFileSync(path.join(models, file), "utf8"));
  const tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: read("tokenizer.json"),
    tokenizerConfig: read("tokenizer_config.json"),
  });
  const ids = [], idsWithSpecial = [], decoded = [];
  for (const text of request.texts) {
    const plain = tokenizer.encode(text, { add_special_tokens: false });
    ids.push(plain);
    idsWithSpecial.push(tokenizer.encode(text, { add_special_tokens: true }));
    // decode() refuses an empty list; the empty text decodes to "".
    decoded.push(plain.length === 0 ? "" : tokenizer.decode(plain));
  }
  const template = tokenizer.chat_template;
  let chat = null, chatError = null;
  if (template) {
    // The fork's Jinja engine does not know every construct the templates use (Qwen3's "is string", for one): the
    // error is recorded, and the test then checks the prompt the model card documents.
    try {
      chat = tokenizer.apply_chat_template(request.conversation, { tokenize: false, add_generation_prompt: true });
    } catch (e) {
      chatError = String(e.message || e);
    }
  }
  output[name] = { ids, idsWithSpecial, decoded, chatTemplate: typeof template === "string" ? template : null, chat, chatError };
}
// Unicode normalization of every text, as V8's ICU does it: the reference for AnyBit's own tables.
output.normalized = {};
for (const form of ["NFC", "NFD", "NFKC", "NFKD"]) output.normalized[form] = request.texts.map((t) => t.normalize(form));
fs.writeFileSync(outputPath, JSON.stringify(output));

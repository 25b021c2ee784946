// llama.cpp's own view of a GGUF file, for Tessera's tests (tests/llama_cpp/README in the header of
// test_llama_cpp.cpp): its token ids for a text, the perplexity over non-overlapping windows with
// Tessera's protocol, and a greedy continuation. Runs llama.cpp's prebuilt CPU binaries through
// node-llama-cpp (pinned in package.json; installed by installers/install-deps-debian.sh).
//
//   node llama_check.mjs --model M.gguf [--text F] [--window N] [--prompt S] [--max-tokens N]
//                        [--kv-type F32|F16] [--tokens-only]
//
// Prints one JSON object: {tokens, n_tokens, windows, window_nll, mean_nll, ppl, greedy_tokens,
// greedy_text, kv_type}; with --tokens-only only the text's tokens (no perplexity, no context). The text is read with universal newlines (as Tessera and Python read it)
// and tokenized with one BOS in front, like `tessera eval`.
import fs from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function parseArgs(argv) {
  const a = { window: 0, maxTokens: 0, prompt: "", kvType: "F32", tokensOnly: false };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i], value = argv[i + 1];
    if (key === "--tokens-only") {
      a.tokensOnly = true;
      i -= 1;
      continue;
    }
    if (value === undefined) throw new Error(`${key} needs a value`);
    if (key === "--model") a.model = value;
    else if (key === "--text") a.text = value;
    else if (key === "--window") a.window = Number(value);
    else if (key === "--prompt") a.prompt = value;
    else if (key === "--max-tokens") a.maxTokens = Number(value);
    else if (key === "--kv-type") a.kvType = value;
    else throw new Error(`unknown option ${key}`);
  }
  if (!a.model) throw new Error("--model is required");
  return a;
}

const args = parseArgs(process.argv);
const llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error, build: "never" });
const model = await llama.loadModel({ modelPath: args.model });
const readText = (path) => fs.readFileSync(path, "utf8").replace(/\r\n?/g, "\n");
if (args.tokensOnly) {
  const tokens = args.text ? [model.tokens.bos, ...model.tokenize(readText(args.text), false)] : [];
  process.stdout.write(JSON.stringify({ tokens, n_tokens: tokens.length }) + "\n");
  await model.dispose();
  await llama.dispose();
  process.exit(0);
}
const trainContext = model.trainContextSize;
const window = args.window > 0 ? args.window : Math.min(2048, trainContext);
const context = await model.createContext({
  contextSize: window,
  batchSize: window,
  sequences: 1,
  flashAttention: false,
  threads: 1,  // more threads spin against each other on small models: 18 s instead of 2.7 s for 3,000 tokens on 2 cores
  experimentalKvCacheKeyType: args.kvType,
  experimentalKvCacheValueType: args.kvType,
});
const sequence = context.getSequence();
const bos = model.tokens.bos;
// No sampling transform (node-llama-cpp's defaults are top-k 40 and top-p 0.95): the weight sum runs
// over the whole vocabulary.
const rawLogits = { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1 };
const out = { kv_type: args.kvType, window, train_context: trainContext };

if (args.text) {
  const text = readText(args.text);
  const tokens = [bos, ...model.tokenize(text, false)];
  out.tokens = tokens;
  out.n_tokens = tokens.length;
  const windows = Math.floor(tokens.length / window);
  out.windows = windows;
  out.window_nll = [];
  for (let w = 0; w < windows; ++w) {
    const ids = tokens.slice(w * window, (w + 1) * window);
    await sequence.clearHistory();
    // Each position but the last asks for the logit of the token that follows it, the largest
    // logit and sum(exp(logit - max)): -log p(next) = max + log(sum) - logit(next).
    const input = ids.map((t, i) =>
      i + 1 < ids.length
        ? [t, { generateNext: { logits: { filter: { tokens: [ids[i + 1]], includeTop: 1 } }, totalLogitWeight: true, options: rawLogits } }]
        : t);
    const results = await sequence.controlledEvaluate(input);
    let nll = 0;
    for (let i = 0; i + 1 < ids.length; ++i) {
      const next = results[i]?.next;
      if (!next || !next.logits || next.totalLogitWeight === undefined) throw new Error(`no logits at window ${w} position ${i}`);
      const max = Math.max(...next.logits.values());
      nll += max + Math.log(next.totalLogitWeight) - next.logits.get(ids[i + 1]);
    }
    out.window_nll.push(nll / (ids.length - 1));
  }
  out.mean_nll = out.window_nll.reduce((s, x) => s + x, 0) / Math.max(1, windows);
  out.ppl = Math.exp(out.mean_nll);
}

if (args.maxTokens > 0) {
  await sequence.clearHistory();
  const prompt = [bos, ...model.tokenize(args.prompt.replace(/\r\n?/g, "\n"), false)];
  const generated = [];
  for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
    if (token === model.tokens.eos) break;
    generated.push(token);
    if (generated.length >= args.maxTokens) break;
  }
  out.greedy_tokens = generated;
  out.greedy_text = model.detokenize(generated);
}

process.stdout.write(JSON.stringify(out) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();

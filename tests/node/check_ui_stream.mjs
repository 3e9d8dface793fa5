// Validate a Vercel AI SDK UI message stream (v1) with the `ai` package's own client code.
//
//   node check_ui_stream.mjs --url http://host/api/chat "question"   # as useChat sends it
//   node check_ui_stream.mjs < body.sse                                # an SSE body from stdin
//
// Prints one JSON object: {chunks, invalid, messages (each snapshot readUIMessageStream
// yielded), final, error}. Every chunk goes through uiMessageChunkSchema (parseJsonEventStream)
// and the whole stream through readUIMessageStream, which throws on out-of-order chunks.
import { DefaultChatTransport, parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from "ai";

async function stdinStream() {
  const parts = [];
  for await (const chunk of process.stdin) parts.push(chunk);
  const bytes = Buffer.concat(parts);
  return new ReadableStream({ start(c) { c.enqueue(new Uint8Array(bytes)); c.close(); } });
}

async function main() {
  const out = { chunks: [], invalid: [], messages: [], final: null, error: null, headers: null };
  let chunkStream;
  const args = process.argv.slice(2);
  if (args[0] === "--url") {
    let seenHeaders = null;
    const transport = new DefaultChatTransport({
      api: args[1],
      fetch: async (input, init) => {
        const r = await fetch(input, init);
        seenHeaders = Object.fromEntries(r.headers.entries());
        return r;
      },
    });
    chunkStream = await transport.sendMessages({
      chatId: "chat-1", trigger: "submit-message", messageId: undefined, abortSignal: undefined,
      messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: args[2] }] }],
    });
    out.headersPromise = () => seenHeaders;
  } else {
    const parsed = parseJsonEventStream({ stream: await stdinStream(), schema: uiMessageChunkSchema });
    chunkStream = parsed.pipeThrough(new TransformStream({
      transform(result, controller) {
        if (result.success) controller.enqueue(result.value);
        else out.invalid.push({ raw: result.rawValue, error: String(result.error).slice(0, 300) });
      },
    }));
  }
  const [forMessages, forList] = chunkStream.tee();
  const collect = (async () => { for await (const c of forList) out.chunks.push(c); })();
  try {
    for await (const message of readUIMessageStream({ stream: forMessages, terminateOnError: true })) {
      out.messages.push(JSON.parse(JSON.stringify(message)));
    }
  } catch (e) {
    out.error = String(e && e.message || e);
  }
  await collect.catch((e) => { out.error = out.error || String(e); });
  out.final = out.messages.length ? out.messages[out.messages.length - 1] : null;
  if (out.headersPromise) { out.headers = out.headersPromise(); delete out.headersPromise; }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => { process.stdout.write(JSON.stringify({ fatal: String(e && e.stack || e) })); process.exit(1); });

// The official TypeScript SDK's MCP client over stdio, for tests/proxy.rs.
// Usage: node ts_client.mjs <command> [args...]  (run with NODE_PATH pointing
// at target/mcp-clients/node_modules). It starts <command> as its MCP server,
// initializes, prints {"phase":"connected",...}, then for every line "round"
// on stdin lists the tools and calls `test-tool`, printing one JSON line per
// round; "quit" or end of input closes the session.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import readline from "node:readline";

const [command, ...args] = process.argv.slice(2);
const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client({ name: "ts-sdk-proxy-test", version: "1.0.0" });
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const failure = (e) => ({ ok: false, error: String(e?.message ?? e), code: e?.code ?? null });

async function round() {
  try {
    const tools = await client.listTools();
    const result = await client.callTool({ name: "test-tool", arguments: {} });
    return {
      ok: true,
      tools: tools.tools.map((t) => t.name),
      text: result.content.map((c) => c.text ?? "").join(""),
      isError: Boolean(result.isError),
    };
  } catch (e) {
    return failure(e);
  }
}

try {
  await client.connect(transport);
  print({ phase: "connected", ok: true, server: client.getServerVersion()?.name ?? null });
} catch (e) {
  print({ phase: "connected", ...failure(e) });
}
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === "quit") break;
  print({ phase: "round", ...(await round()) });
}
await client.close();
process.exit(0);

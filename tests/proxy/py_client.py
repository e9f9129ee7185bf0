"""The Python MCP SDK's stdio_client, for tests/proxy.rs.

Usage: python py_client.py <command> [args...]. Starts <command> as its MCP
server, initializes, prints {"phase": "connected", ...}, then for every line
"round" on stdin lists the tools and calls `test-tool`, printing one JSON
line per round; "quit" or end of input closes the session.
"""

import json
import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def emit(value):
    print(json.dumps(value), flush=True)


def failure(e):
    error = getattr(e, "error", None)
    return {"ok": False, "error": str(e), "code": getattr(error, "code", None)}


async def one_round(session):
    try:
        tools = await session.list_tools()
        result = await session.call_tool("test-tool", {})
        return {
            "ok": True,
            "tools": [t.name for t in tools.tools],
            "text": "".join(getattr(c, "text", "") for c in result.content),
            "isError": bool(result.isError),
        }
    except Exception as e:  # noqa: BLE001 - reported to the test
        return failure(e)


async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            try:
                info = await session.initialize()
                emit({"phase": "connected", "ok": True, "server": info.serverInfo.name})
            except Exception as e:  # noqa: BLE001
                emit({"phase": "connected", **failure(e)})
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line or line.strip() == "quit":
                    break
                emit({"phase": "round", **(await one_round(session))})


anyio.run(main)

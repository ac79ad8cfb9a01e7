// The resdsl extension: highlighting comes from syntaxes/ (no code); this file starts the
// language server, `resdsl lsp` (stdio), through vscode-languageclient, for every `res` file.
// The command is the setting `resdsl.server.command` (default ["resdsl", "lsp"]).
"use strict";
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const cfg = vscode.workspace.getConfiguration("resdsl");
  const cmd = cfg.get("server.command", ["resdsl", "lsp"]);
  if (!Array.isArray(cmd) || cmd.length === 0 || cmd.some((x) => typeof x !== "string")) {
    throw new Error('resdsl.server.command must be a list of strings, e.g. ["resdsl", "lsp"]');
  }
  return { command: cmd[0], args: cmd.slice(1), transport: TransportKind.stdio };
}

async function start(context) {
  if (!vscode.workspace.getConfiguration("resdsl").get("server.enabled", true)) {
    return;
  }
  const clientOptions = {
    documentSelector: [{ language: "res" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.res") },
  };
  client = new LanguageClient("resdsl", "resdsl", serverOptions(), clientOptions);
  try {
    await client.start();
  } catch (err) {
    client = undefined;
    vscode.window.showErrorMessage(
      `resdsl: cannot start the language server (${err.message || err}). Install resdsl (pip install resdsl) ` +
        "or set resdsl.server.command to the resdsl of your environment."
    );
  }
}

async function stop() {
  if (client) {
    const c = client;
    client = undefined;
    await c.stop();
  }
}

function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("resdsl.restartServer", async () => {
      await stop();
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("resdsl.server")) {
        await stop();
        await start(context);
      }
    })
  );
  return start(context);
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };

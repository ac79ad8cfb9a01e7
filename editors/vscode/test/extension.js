// Loads extension.js with stand-ins for `vscode` and `vscode-languageclient/node` (neither runs
// outside VS Code) and prints, as JSON, how activate() starts the language server: the command,
// its arguments, the transport and the document selector. tests/test_vscode.py checks them
// against package.json and against `resdsl lsp`. argv[2]: the resdsl.server.command setting (JSON).
"use strict";
const Module = require("module");
const setting = process.argv[2] ? JSON.parse(process.argv[2]) : undefined;
const seen = {};
const vscode = {
  workspace: {
    getConfiguration: () => ({ get: (key, dflt) => (key === "server.command" && setting !== undefined ? setting : dflt) }),
    createFileSystemWatcher: (glob) => ({ glob }),
    onDidChangeConfiguration: () => ({ dispose() {} }),
  },
  window: { showErrorMessage: (m) => { seen.error = m; } },
  commands: { registerCommand: (name) => { seen.commands = (seen.commands || []).concat([name]); return { dispose() {} }; } },
};
class LanguageClient {
  constructor(id, name, server, client) {
    Object.assign(seen, { id, name, server, selector: client.documentSelector });
  }
  start() { seen.started = true; return Promise.resolve(); }
  stop() { return Promise.resolve(); }
}
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === "vscode") return vscode;
  if (request === "vscode-languageclient/node") return { LanguageClient, TransportKind: { stdio: 0 } };
  return load.call(this, request, ...rest);
};
const ext = require("../extension.js");
Promise.resolve(ext.activate({ subscriptions: [] }))
  .catch((e) => { seen.error = String(e.message || e); })
  .then(() => console.log(JSON.stringify(seen)));

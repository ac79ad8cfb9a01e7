"""The language server (`resdsl lsp`) and the analysis of a `.res` text it shares with the preview.

:mod:`.analysis` needs no language-server library; :mod:`.server` needs pygls."""

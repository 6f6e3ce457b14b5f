# scripts/deps.d/web.sh: the browser tests need headless Chromium
# (driven by npm playwright-core with executablePath /usr/bin/chromium) and
# TypeScript for the tsc --noEmit check of wasm/bitkit.d.ts.
APT_PACKAGES+=(chromium fonts-dejavu-core)
NPM_DIRS+=("$here/../web/test")
# The dashboard's build (make web): CodeMirror 6 and esbuild from npm.
NPM_DIRS+=("$here/../web")

# Serverless adapters: workerd (and wrangler for deploys) from npm,
# pinned in workers/package.json and workers/package-lock.json.
NPM_DIRS+=("$here/../workers")

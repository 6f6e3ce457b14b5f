// Connects to bitd's wire proxy with node-postgres and TLS verification on
// (ssl: true, the CA from NODE_EXTRA_CA_CERTS), runs SELECT 1 and prints
// "ok 1". PGSERVERNAME, when set, is the name the certificate is checked
// against instead of the host (a name the certificate was not issued for
// must be refused).
const { Client } = require("pg");

async function main() {
  const ssl = process.env.PGSERVERNAME ? { servername: process.env.PGSERVERNAME } : true;
  const c = new Client({
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT),
    user: process.env.PGUSER,
    password: process.env.PGPASSWORD,
    database: process.env.PGDATABASE,
    ssl,
  });
  await c.connect();
  const r = await c.query("SELECT 1 AS one");
  console.log("ok " + r.rows[0].one);
  await c.end();
}

main().catch((e) => {
  console.error("error: " + (e.code ? e.code + ": " : "") + e.message);
  process.exit(1);
});

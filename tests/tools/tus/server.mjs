// The reference tus server for ebb's tests: uploads under /files/ into the directory given as
// the first argument, on 127.0.0.1 and a free port, which it prints once listening.
import http from "node:http";
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const directory = process.argv[2];
const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(0, "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});

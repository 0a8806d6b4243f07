// A Socket.IO 4.8 chat server as a team would hand-roll it: every client joins the room named in its
// handshake query, and each "msg" event is emitted to the whole room (sender included, as IVS does),
// across processes through @socket.io/redis-adapter.
//
// usage: node server.cjs <port> <redis url> <adapter key prefix>
"use strict";
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

async function main() {
  const [port, redisUrl, key] = process.argv.slice(2);
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server({
    transports: ["websocket"],
    serveClient: false,
    perMessageDeflate: false,
    adapter: createAdapter(pub, sub, { key }),
  });
  io.on("connection", (socket) => {
    const room = String(socket.handshake.query.room);
    socket.join(room);
    socket.on("msg", (content) => io.to(room).emit("msg", content));
  });
  io.listen(Number(port));
  process.stdout.write(`listening ${port}\n`);
  const stop = () => io.close(() => Promise.all([pub.quit(), sub.quit()]).finally(() => process.exit(0)));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

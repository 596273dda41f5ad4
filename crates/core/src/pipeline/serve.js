// Static file server Easy Deploy puts into frontend images: serves the
// production build, falls back to index.html for client-side routes.
"use strict";
const http = require("http");
const fs = require("fs");
const path = require("path");

const root = path.resolve(process.argv[2] || "/site");
const port = Number(process.env.PORT || 8080);
const types = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
  ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png",
  ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".ico": "image/x-icon",
  ".webp": "image/webp", ".woff": "font/woff", ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8",
  ".map": "application/json", ".wasm": "application/wasm",
};

function send(res, file, status) {
  fs.stat(file, (err, st) => {
    if (err || !st.isFile()) {
      res.writeHead(404, { "content-type": "text/plain" });
      return res.end("not found\n");
    }
    res.writeHead(status, {
      "content-type": types[path.extname(file).toLowerCase()] || "application/octet-stream",
      "content-length": st.size,
    });
    fs.createReadStream(file).pipe(res);
  });
}

http.createServer((req, res) => {
  let pathname;
  try {
    pathname = decodeURIComponent(new URL(req.url, "http://x").pathname);
  } catch {
    res.writeHead(400);
    return res.end();
  }
  const file = path.resolve(root, "." + pathname);
  if (file !== root && !file.startsWith(root + path.sep)) {
    res.writeHead(404);
    return res.end();
  }
  fs.stat(file, (err, st) => {
    if (!err && st.isDirectory()) return send(res, path.join(file, "index.html"), 200);
    if (!err && st.isFile()) return send(res, file, 200);
    if (path.extname(pathname) === "") return send(res, path.join(root, "index.html"), 200);
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  });
}).listen(port, "0.0.0.0", () => console.log(`serving ${root} on port ${port}`));

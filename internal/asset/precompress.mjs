// Writes name.br (brotli, quality 11) and name.gz (gzip, level 9) beside
// each file named on the command line: the encodings the binary serves
// ready-made (package asset). make assets and the Dockerfile run it; Node's
// zlib is the reference brotli, far quicker at its best quality than a
// board would be at start-up.
//   node internal/asset/precompress.mjs dashboard/assets/app.js ...
import { readFileSync, writeFileSync } from "node:fs";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

for (const name of process.argv.slice(2)) {
  const body = readFileSync(name);
  writeFileSync(name + ".br", brotliCompressSync(body, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
    },
  }));
  writeFileSync(name + ".gz", gzipSync(body, { level: 9 }));
}

// Bundles src/main.js (+ its CSS) into collab/web/static/assets/app.{js,css} and copies
// index.html to collab/web/static/. The output is committed: the server serves it without Node.
import { build } from 'esbuild'
import { copyFile, mkdir, rm, stat } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(dirname(fileURLToPath(import.meta.url)))
// STATIC_DIR builds elsewhere (the tests compare such a build with the committed one).
const staticDir = resolve(process.env.STATIC_DIR || join(here, '..', '..', 'collab', 'web', 'static'))
const assets = join(staticDir, 'assets')

await rm(assets, { recursive: true, force: true })
await mkdir(assets, { recursive: true })
await build({
  entryPoints: { app: join(here, 'src', 'main.js') },
  outdir: assets,
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  legalComments: 'none',
  logLevel: 'warning'
})
await copyFile(join(here, 'index.html'), join(staticDir, 'index.html'))

for (const file of ['index.html', 'assets/app.js', 'assets/app.css']) {
  const { size } = await stat(join(staticDir, file))
  console.log(`${relative(process.cwd(), join(staticDir, file))}  ${(size / 1024).toFixed(1)} KiB`)
}

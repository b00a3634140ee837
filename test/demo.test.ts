// `npm start`: the demo server prints a working curl command and stops cleanly on Ctrl-C.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, existsSync } from 'node:fs'
import { request } from './helpers/webhook-client.js'
import { distBin } from './helpers/paths.js'

t.test('prints a copy-pasteable curl whose target answers with a patch', async t => {
  const child = spawn(process.execPath, [distBin('demo')])
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d))
  const exited = new Promise<number | null>(r => child.on('exit', code => r(code)))
  await new Promise<void>(resolve => child.stdout.on('data', () => out.includes('Stop with Ctrl-C') && resolve()))
  const cacert = /--cacert (\S+)/.exec(out)?.[1] ?? ''
  const body = /--data-binary @(\S+)/.exec(out)?.[1] ?? ''
  const port = Number(/https:\/\/localhost:(\d+)\/mutate/.exec(out)?.[1])
  t.ok(existsSync(cacert), 'the certificate file exists')
  const r = await request({ port, ca: readFileSync(cacert), body: readFileSync(body) })
  t.equal(r.status, 200)
  t.match(r.body, /"patchType":"JSONPatch"/)
  t.match(out, /curl -s http:\/\/127\.0\.0\.1:\d+\/readyz/)
  child.kill('SIGINT')
  t.equal(await exited, 0)
  t.notOk(existsSync(cacert), 'the throw-away certificate is removed')
})

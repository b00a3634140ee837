import t from 'tap'
import { readFileSync } from 'node:fs'
import { userAgent, version } from '../lib/version.js'
import { repoPath } from './helpers/paths.js'

t.test('version matches package.json', async t => {
  const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string }
  t.equal(version, pkg.version)
  t.equal(userAgent, `stackit-pod-identity-webhook/${pkg.version}`)
})

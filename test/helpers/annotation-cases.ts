/** The annotation cases shared by the Pod and the ServiceAccount admission tests (keys without the prefix). */

export const email = 'app-1a2b@sa.stackit.cloud'
export const skipKey = 'skip-pod-identity-webhook'

/** ServiceAccount annotations with the e-mail set, plus `more`. */
export const ours = (more: Record<string, string> = {}): Record<string, string> => ({
  'service-account-email': email,
  ...more,
})

/** A case of broken annotations: the ServiceAccount's and the Pod's (keys without the prefix), what the denial says. */
export type InvalidCase = [
  name: string,
  annotations: Record<string, string>,
  pod: Record<string, string>,
  message: RegExp[],
  labels?: Record<string, string>,
]
/**
 * Broken annotations and what the denial must say: one table for Pod admission and, where the Pod adds nothing
 * (no Pod annotations or labels), for ServiceAccount admission.
 */
export const invalidAnnotationCases: readonly InvalidCase[] = [
  [
    'display-name e-mail',
    { 'service-account-email': 'App <app@sa.stackit.cloud>' },
    {},
    [/service-account-email="App <app@sa.stackit.cloud>" must be a plain e-mail/],
  ],
  ['e-mail with a space', { 'service-account-email': 'app @sa.stackit.cloud' }, {}, [/plain e-mail/]],
  ['e-mail without domain dot', { 'service-account-email': 'app@localhost' }, {}, [/plain e-mail/]],
  ['blank audience', { 'service-account-email': email, audience: '  ' }, {}, [/audience=" {2}" must be non-empty/]],
  [
    'audience with surrounding spaces',
    { 'service-account-email': email, audience: ' a ' },
    {},
    [/without surrounding spaces/],
  ],
  [
    'expiration below 600',
    { 'service-account-email': email, 'service-account-token-expiration-seconds': '599' },
    {},
    [/="599" must be a whole number of seconds from 600 to 4294967296/],
  ],
  [
    'expiration above 2^32',
    { 'service-account-email': email, 'service-account-token-expiration-seconds': '4294967297' },
    {},
    [/="4294967297"/],
  ],
  [
    'expiration not a number',
    { 'service-account-email': email, 'service-account-token-expiration-seconds': 'not-a-number' },
    {},
    [/"not-a-number"/],
  ],
  [
    'expiration negative',
    { 'service-account-email': email, 'service-account-token-expiration-seconds': '-600' },
    {},
    [/"-600"/],
  ],
  [
    'expiration decimal',
    { 'service-account-email': email, 'service-account-token-expiration-seconds': '600.5' },
    {},
    [/"600.5"/],
  ],
  [
    'expiration exponent',
    { 'service-account-email': email, 'service-account-token-expiration-seconds': '6e2' },
    {},
    [/"6e2"/],
  ],
  [
    'Pod override below 600',
    { 'service-account-email': email },
    { 'service-account-token-expiration-seconds': '60' },
    [/^Pod annotation .*="60" must be/],
  ],
  [
    'idp expiration zero',
    { 'service-account-email': email, 'idp-token-expiration-seconds': '0' },
    {},
    [/idp-token-expiration-seconds="0" must be a positive whole number/],
  ],
  ['idp expiration text', { 'service-account-email': email, 'idp-token-expiration-seconds': 'soon' }, {}, [/"soon"/]],
  [
    'idp endpoint http',
    { 'service-account-email': email, 'idp-token-endpoint': 'http://idp.example.com/token' },
    {},
    [/idp-token-endpoint="http:\/\/idp.example.com\/token" must be an absolute https:\/\/ URL/],
  ],
  [
    'idp endpoint relative',
    { 'service-account-email': email, 'idp-token-endpoint': '/oauth/token' },
    {},
    [/must be an absolute https/],
  ],
  [
    'idp endpoint with credentials',
    { 'service-account-email': email, 'idp-token-endpoint': 'https://u:p@idp.example.com/' },
    {},
    [/without credentials/],
  ],
  [
    'idp endpoint with spaces',
    { 'service-account-email': email, 'idp-token-endpoint': ' https://idp.example.com/' },
    {},
    [/must be an absolute https/],
  ],
  [
    'token file relative',
    { 'service-account-email': email, 'federated-token-file': 'token' },
    {},
    [/federated-token-file="token" must be an absolute path/],
  ],
  [
    'token file with ..',
    { 'service-account-email': email, 'federated-token-file': '/var/../etc/token' },
    {},
    [/must not contain "\.\." elements/],
  ],
  [
    'token file not normalised',
    { 'service-account-email': email, 'federated-token-file': '/var//run/token' },
    {},
    [/must be normalised/],
  ],
  [
    'token file trailing slash',
    { 'service-account-email': email, 'federated-token-file': '/var/run/' },
    {},
    [/end in a file name/],
  ],
  [
    'token file directly in /',
    { 'service-account-email': email, 'federated-token-file': '/token' },
    {},
    [/not directly in "\/"/],
  ],
  [
    'token file with a colon',
    { 'service-account-email': email, 'federated-token-file': '/var/run:x/token' },
    {},
    [/must not contain whitespace/],
  ],
  [
    'skip annotation "yes"',
    { 'service-account-email': email, 'skip-pod-identity-webhook': 'yes' },
    {},
    [/skip-pod-identity-webhook="yes" must be "true" or "false"/],
  ],
  [
    'three errors together',
    { 'service-account-email': 'x', audience: ' ', 'idp-token-expiration-seconds': '-1' },
    {},
    [/service-account-email="x"/, /audience=" "/, /idp-token-expiration-seconds="-1"/, /Fix the annotations/],
  ],
  // Kubernetes rejects a projected token path that starts with ".." (validateLocalNonReservedPath).
  [
    'token file name starting with ".."',
    ours({ 'federated-token-file': '/var/run/stackit/..token' }),
    {},
    [/federated-token-file="\/var\/run\/stackit\/\.\.token" must not name a file that starts with "\.\."/],
  ],
  ['token file name "..data"', ours({ 'federated-token-file': '/var/run/stackit/..data' }), {}, [/starts with "\.\."/]],
  // WHATWG URL parsing strips TAB and newlines, so the URL check alone let them through into the env value.
  [
    'idp endpoint with a TAB inside',
    ours({ 'idp-token-endpoint': 'https://idp.example.com/\ttoken' }),
    {},
    [/idp-token-endpoint="https:\/\/idp\.example\.com\/\\ttoken" must not contain control characters/],
  ],
  [
    'idp endpoint with a newline inside',
    ours({ 'idp-token-endpoint': 'https://idp.exam\nple.com/token' }),
    {},
    [/="https:\/\/idp\.exam\\nple\.com\/token" must not contain control/],
  ],
  [
    'idp endpoint with DEL',
    ours({ 'idp-token-endpoint': 'https://idp.example.com/\u007f' }),
    {},
    [/\\u007f" must not contain control/],
  ],
  [
    'idp endpoint with a C1 control (NEL)',
    ours({ 'idp-token-endpoint': 'https://idp.example.com/\u0085' }),
    {},
    [/\\u0085" must not contain control/],
  ],
  [
    'audience with a control character',
    ours({ audience: 'sts\u0001aud' }),
    {},
    [/audience="sts\\u0001aud" must not contain control/],
  ],
  [
    'e-mail with a newline',
    { 'service-account-email': 'app@sa.stackit.cloud\n' },
    {},
    [/service-account-email="app@sa\.stackit\.cloud\\n" must not contain control/],
  ],
  [
    'token file with a control character',
    ours({ 'federated-token-file': '/var/run/\u001btoken' }),
    {},
    [/federated-token-file="\/var\/run\/\\u001btoken" must not contain control/],
  ],
  [
    'idp expiration with a newline',
    ours({ 'idp-token-expiration-seconds': '900\n' }),
    {},
    [/idp-token-expiration-seconds="900\\n" must not contain control/],
  ],
  [
    'Pod skip label "yes" with an identity',
    ours(),
    {},
    [
      /^Pod label workload-identity\.stackit\.cloud\/skip-pod-identity-webhook="yes" must be "true" or "false"\. /,
      /\. Fix the annotation and create the Pod again\.$/,
    ],
    { [skipKey]: 'yes' },
  ],
  [
    'ServiceAccount and Pod problems together, the ServiceAccount first',
    ours({ audience: ' ' }),
    {},
    [
      /^ServiceAccount team-a\/app annotation .*audience=" ".*; Pod label .*="yes" must be "true" or "false"\. /,
      /Fix the annotations/,
    ],
    { [skipKey]: 'yes' },
  ],
]

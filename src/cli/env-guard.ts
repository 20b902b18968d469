import { isEnvName } from '../secrets/export-format.js';

/**
 * Which secrets `secrets run` may put into the command's environment. A secret may not
 * silently replace a variable that changes how programs start or what they load: anyone
 * who can write a secret could otherwise run code in every consumer (NODE_OPTIONS=--require,
 * LD_PRELOAD, PATH, BASH_ENV...). Those are refused unless --allow-env NAME names each.
 * Names no shell accepts (9LIVES) are skipped with a warning.
 */
export const DENIED_ENV = [
  'PATH',
  'HOME',
  'SHELL',
  'IFS',
  'ENV',
  'BASH_ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'PS4',
  'PROMPT_COMMAND',
  'NODE_OPTIONS',
  'NODE_PATH',
  'NODE_EXTRA_CA_CERTS',
  'NODE_TLS_REJECT_UNAUTHORIZED',
  'PYTHONPATH',
  'PYTHONSTARTUP',
  'PYTHONHOME',
  'PYTHONUSERBASE',
  'PERL5OPT',
  'PERL5LIB',
  'PERLLIB',
  'RUBYOPT',
  'RUBYLIB',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'JDK_JAVA_OPTIONS',
  'CLASSPATH',
  'DOTNET_STARTUP_HOOKS',
  'GCONV_PATH',
  'LOCPATH',
  'HOSTALIASES',
  'RESOLV_HOST_CONF',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_EXEC_PATH',
  'GIT_ASKPASS',
  'SSH_ASKPASS',
  'EDITOR',
  'VISUAL',
  'PAGER',
] as const;

/** Whole families: the dynamic loader, git's config injection, npm's configuration, exported bash functions. */
export const DENIED_ENV_PREFIXES = ['LD_', 'DYLD_', 'GIT_CONFIG_', 'NPM_CONFIG_', 'BASH_FUNC_'] as const;

export function isDeniedEnv(name: string): boolean {
  return (
    (DENIED_ENV as readonly string[]).includes(name) || DENIED_ENV_PREFIXES.some((p) => name.startsWith(p))
  );
}

export class DeniedEnvError extends Error {
  constructor(readonly names: string[]) {
    super(
      `refusing to set ${names.join(', ')} from secrets: ${names.length > 1 ? 'these variables change' : 'this variable changes'} how programs start or what they load (see the deny-list in docs/cli.md). Rename the secret, or pass ${names.map((n) => `--allow-env ${n}`).join(' ')} if it is meant`,
    );
  }
}

/** The secrets safe to export; warns (through `warn`) about names skipped. */
export function envFromSecrets(
  secrets: Record<string, string>,
  allow: readonly string[],
  warn: (line: string) => void,
): Record<string, string> {
  const out: Record<string, string> = {};
  const denied: string[] = [];
  for (const [k, v] of Object.entries(secrets)) {
    if (!isEnvName(k)) {
      warn(`skipping ${k}: not a valid environment variable name (it starts with a digit)`);
      continue;
    }
    if (isDeniedEnv(k) && !allow.includes(k)) {
      denied.push(k);
      continue;
    }
    out[k] = v;
  }
  if (denied.length) throw new DeniedEnvError(denied);
  return out;
}

import { ApiClient } from './api-client.js';
import { Flags, parseArgs } from './args.js';
import { resolveConfig } from './cli-config.js';
import { CliError, EXIT } from './cli-error.js';
import { builds, cancel, logs, status, submit, watch } from './commands/build-commands.js';
import type { Command } from './commands/command-context.js';
import { keys, models, pools, promote, pull, rollback, rollout, versions, workers } from './commands/registry-commands.js';

const COMMON = ['url', 'api-key', 'json', 'help', 'no-color', 'quiet'];

const COMMANDS: Record<string, { run: Command; flags: string[]; help: string }> = {
  submit: {
    run: submit,
    flags: ['targets', 'precision', 'profile', 'model', 'spec', 'label', 'priority', 'idempotency-key', 'wait'],
    help: 'submit MODEL.onnx --targets hopper,ampere [--precision fp16] [--profile input=1x3x224x224/8x3x224x224/16x3x224x224] [--model NAME] [--spec spec.json] [--label k=v] [--priority release|branch|N] [--wait]',
  },
  status: { run: status, flags: [], help: 'status BUILD_ID' },
  watch: { run: watch, flags: [], help: 'watch BUILD_ID            live progress until the build ends' },
  logs: { run: logs, flags: [], help: 'logs BUILD_ID TARGET' },
  cancel: { run: cancel, flags: ['reason'], help: 'cancel BUILD_ID [--reason TEXT]' },
  builds: { run: builds, flags: ['state', 'model', 'limit'], help: 'builds [--state open|finished|all] [--model NAME] [--limit N]' },
  models: { run: models, flags: [], help: 'models' },
  versions: { run: versions, flags: ['model'], help: 'versions MODEL' },
  promote: { run: promote, flags: ['channel', 'target', 'reason', 'force', 'canary'], help: 'promote MODEL VERSION --channel NAME [--target sm_90] [--reason TEXT] [--force] [--canary PCT]' },
  rollback: { run: rollback, flags: ['channel', 'reason', 'to', 'target', 'model'], help: 'rollback MODEL --channel NAME --reason TEXT [--to VERSION] [--target sm_90]' },
  rollout: { run: rollout, flags: [], help: 'rollout status MODEL CHANNEL     state, canary %, window left, checks vs limits, decision' },
  pull: { run: pull, flags: ['model', 'channel', 'sm', 'output', 'runtime'], help: 'pull --model NAME --channel NAME --sm 86 -o FILE   (sha256 verified)' },
  keys: { run: keys, flags: ['role'], help: 'keys [list] | keys create NAME --role viewer|submitter|admin | keys revoke KEY_ID' },
  workers: { run: workers, flags: [], help: 'workers' },
  pools: { run: pools, flags: [], help: 'pools' },
};

function usage(): string {
  return [
    'planforge: the engine build farm from the command line',
    '',
    'usage: planforge COMMAND [ARGS] [--url URL] [--api-key KEY] [--json]',
    '',
    ...Object.values(COMMANDS).map((c) => `  ${c.help}`),
    '',
    'Configuration: flags, else PLANFORGE_URL / PLANFORGE_API_KEY, else ~/.config/planforge/config.json {"url", "apiKey"}.',
    'Exit codes: 0 ok, 1 build failed, 2 usage, 3 server or network error, 4 authentication.',
    '',
  ].join('\n');
}

export async function run(argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  let json = false;
  try {
    const parsed = parseArgs(argv);
    const flags = new Flags(parsed.flags);
    json = flags.bool('json');
    if (!parsed.command || parsed.command === 'help' || flags.bool('help')) {
      (parsed.command ? out : err).write(usage());
      return parsed.command ? EXIT.ok : EXIT.usage;
    }
    const command = COMMANDS[parsed.command];
    if (!command) throw CliError.usage(`unknown command "${parsed.command}"; run planforge help`);
    const unknown = flags.unknown([...COMMON, ...command.flags]);
    if (unknown.length) throw CliError.usage(`${parsed.command}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `--${u}`).join(', ')}`);
    const client = new ApiClient(resolveConfig(flags));
    return await command.run({ client, flags, positionals: parsed.positionals, json, out, err });
  } catch (e) {
    if (e instanceof CliError) {
      if (json) out.write(`${JSON.stringify({ error: e.message, exitCode: e.exitCode, ...(e.body ? { response: e.body } : {}) }, null, 2)}\n`);
      err.write(`planforge: ${e.message}\n`);
      return e.exitCode;
    }
    err.write(`planforge: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    return EXIT.server;
  }
}

#!/usr/bin/env node
// `gluster-libvirt`: the package's command line:
//   gluster-libvirt lab up|down|status     the local lab
//   gluster-libvirt doctor [options]       what the resources need of hosts and volumes (sdk/doctor.ts)
// The lab itself is bash shipped in the package (scripts/lab.sh, which sources
// scripts/lab-hypervisors.sh and scripts/lab-guest.sh; docs/lab.md says why it ships); this file only finds it
// next to the installed package and hands over the terminal.
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { DOCTOR_USAGE, doctorMain } from "./doctor";

const USAGE = `usage: gluster-libvirt lab <up|down|status>
       gluster-libvirt doctor [options]   (gluster-libvirt doctor --help)

  lab up      start (or repair) the local lab: sshd on 127.0.0.1:2222, glusterd with the
              volume "labvol", libvirtd with two test domains, a guest image;
              prints the lab's JSON
  lab status  print the lab's JSON if it is up (exit 0), else what is down (exit 1)
  lab down    stop what the lab started and delete its state

Needs root on Debian. State: $GLUSTER_LIBVIRT_LAB_DIR (default /var/lib/gluster-libvirt-lab).`;

const LAB_COMMANDS: ReadonlySet<string> = new Set(["up", "down", "status"]);

/** scripts/lab.sh of this package: dist/sdk/cli.js -> ../../scripts/lab.sh */
export function labScriptPath(): string {
  return path.resolve(__dirname, "..", "..", "scripts", "lab.sh");
}

export function main(argv: readonly string[]): number | Promise<number> {
  const [group, command, ...rest] = argv;
  if (group === "--help" || group === "-h" || group === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (group === "doctor") {
    if (command === "--help" || command === "-h") {
      process.stdout.write(`${DOCTOR_USAGE}\n`);
      return 0;
    }
    return doctorMain(argv.slice(1), (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
  }
  if (group !== "lab" || command === undefined || !LAB_COMMANDS.has(command) || rest.length > 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const script = labScriptPath();
  const result = spawnSync("bash", [script, command], { stdio: "inherit" });
  if (result.error) {
    process.stderr.write(`gluster-libvirt: cannot run ${script}: ${result.error.message}\n`);
    return 1;
  }
  if (result.signal) {
    process.stderr.write(`gluster-libvirt: lab ${command} was killed by ${result.signal}\n`);
    return 1;
  }
  return result.status ?? 1;
}

if (require.main === module) {
  Promise.resolve(main(process.argv.slice(2))).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`gluster-libvirt: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

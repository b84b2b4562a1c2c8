/*
 * `gluster-libvirt doctor` against the lab, through the real command line (a child
 * process, as a user runs it): the lab as it is passes, every check answering; a lab
 * deliberately broken with objects of this test's own — a replica-3 volume with options
 * reset or turned off and one brick process killed, a stopped volume, hypervisor 2 behind
 * a known_hosts that lacks its key — gets one FAILURE line per broken prerequisite, each
 * with its fix, and exit status 1. Nothing of the shared lab (labvol, its daemons) changes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { CheckId } from "../../provider/checks";
import type { DoctorResult } from "../../provider/doctor";
import { getMultiHostLab, knownHostsOfAll } from "../helpers/hypervisors";
import { cliPath, type LabInfo } from "../helpers/lab";
import { createGlusterVolume, gluster, glusterBricks, uniqueName } from "../helpers/local";

let lab: LabInfo;
let allKnownHosts: string;
const cleanups: Array<() => void> = [];

function doctor(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, "doctor", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** The lab user's credentials for every host, as flags. */
const credentials = (knownHosts: string) => ["--port", String(lab.ssh.port), "--user", lab.ssh.user, "--key", lab.ssh.privateKeyPath, "--known-hosts", knownHosts];

before(async () => {
  lab = await getMultiHostLab(2);
  allKnownHosts = knownHostsOfAll(lab);
});

after(() => {
  for (const cleanup of cleanups.reverse()) {
    try {
      cleanup();
    } catch (e) {
      console.error(`cleanup failed: ${String(e)}`);
    }
  }
});

describe("gluster-libvirt doctor on the lab", () => {
  test("the lab as it is: every check answers, none fails, exit 0 (--json)", async () => {
    const r = await doctor([...credentials(allKnownHosts), ...lab.hypervisors.flatMap((h) => ["--host", h.ssh.host]), "--gluster-host", lab.ssh.host, "--volume", lab.gluster.volume, "--json"]);
    const { results, summary } = JSON.parse(r.stdout) as { results: DoctorResult[]; summary: { failure: number } };
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(summary.failure, 0, r.stdout);
    const ids = new Set(results.map((x) => x.check));
    const every: CheckId[] = ["ssh", "virsh", "netfs-pool", "gluster-pool", "mount-glusterfs", "dev-fuse", "qemu-gluster-driver", "qemu-owner", "allow-insecure", "rpc-auth-allow-insecure", "gluster-reachable", "volume-started", "bricks-online", "pending-heals", "free-space"];
    assert.deepEqual(every.filter((id) => !ids.has(id)), [], "every check ran");
    for (const h of lab.hypervisors) {
      const own = results.filter((x) => x.subject.includes(`@${h.ssh.host}:`) && x.subject.startsWith("hypervisor"));
      assert.deepEqual(own.filter((x) => x.status !== "ok").map((x) => `${x.check}: ${x.message}`), [], `hypervisor ${h.ssh.host}`);
      assert.ok(own.some((x) => x.check === "gluster-reachable" && / reaches .*:24007 \(glusterd\).*\(brick /.test(x.message)), `${h.ssh.host} reached glusterd and the brick`);
    }
  });

  test("a broken lab of our own objects: one FAILURE line per broken prerequisite, with its fix, exit 1", async () => {
    // a replica-3 volume with its QEMU owner reset, one brick process killed
    const broken = uniqueName("s15doc").replace(/-/g, "_");
    const bricks = glusterBricks(lab, broken, 3);
    cleanups.push(() => bricks.remove());
    gluster("volume", "create", broken, "replica", "3", ...bricks.bricks, "force");
    gluster("volume", "set", broken, "storage.owner-uid", String(lab.qemu.uid));
    gluster("volume", "set", broken, "storage.owner-gid", String(lab.qemu.gid));
    gluster("volume", "start", broken);
    gluster("volume", "reset", broken, "storage.owner-uid");
    gluster("volume", "reset", broken, "storage.owner-gid");
    const status = gluster("--xml", "volume", "status", broken);
    const third = [...status.matchAll(/<node>([\s\S]*?)<\/node>/g)].map((m) => m[1]).find((n) => n.includes(`${bricks.dirs[2]}<`));
    const pid = Number(/<pid>(\d+)<\/pid>/.exec(third ?? "")?.[1]);
    assert.ok(pid > 0, `the brick process of ${bricks.dirs[2]}:\n${status}`);
    process.kill(pid, "SIGKILL"); // our own volume's brick: labvol's are untouched
    // a volume of ours that is not started, with allow-insecure off
    const stopped = createGlusterVolume(lab, uniqueName("s15doc").replace(/-/g, "_"), { start: false });
    cleanups.push(() => stopped.remove());
    gluster("volume", "set", stopped.name, "server.allow-insecure", "off");

    // host 1's known_hosts only knows host 1: hypervisor 2's key is not verified
    const r = await doctor([...credentials(lab.ssh.knownHostsFile), ...lab.hypervisors.flatMap((h) => ["--host", h.ssh.host]), "--gluster-host", lab.ssh.host, "--volume", broken, "--volume", stopped.name]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    const failure = (check: CheckId, subject: string, message: RegExp, fix: RegExp) => {
      const line = lines.find((l) => l.startsWith(`FAILURE ${subject}`) && l.includes(`: ${check}: `));
      assert.ok(line, `no FAILURE line for ${check} of ${subject}:\n${r.stdout}`);
      const [said, fixed] = line.split(" — fix: ");
      assert.match(said, message, line);
      assert.match(fixed ?? "", fix, line);
    };
    const hv1 = `hypervisor ${lab.ssh.user}@${lab.hypervisors[0].ssh.host}:${lab.ssh.port}`;
    const hv2 = `hypervisor ${lab.ssh.user}@${lab.hypervisors[1].ssh.host}:${lab.ssh.port}`;
    failure("allow-insecure", `volume ${stopped.name}`, /server\.allow-insecure is off/, new RegExp(`gluster volume set ${stopped.name} server\\.allow-insecure on`));
    failure("bricks-online", `volume ${broken}`, new RegExp(`1 of 3 bricks offline: \\S+:${bricks.dirs[2]}$`), new RegExp(`gluster volume start ${broken} force`));
    failure("volume-started", `volume ${stopped.name}`, /is Created, not started/, new RegExp(`gluster volume start ${stopped.name}`));
    failure("qemu-owner", hv1, new RegExp(`volume ${broken} does not set storage\\.owner-uid/gid`), new RegExp(`storage\\.owner-uid ${lab.qemu.uid}; gluster volume set ${broken} storage\\.owner-gid ${lab.qemu.gid}`));
    failure("ssh", hv2, /host key/i, new RegExp(`add the key to ${lab.ssh.knownHostsFile.replace(/[.]/g, "\\.")} or pin it`));
    assert.ok(lines.some((l) => l.startsWith("warning ") && l.includes(`volume ${broken}: pending-heals:`)), `heals of a volume with a brick down cannot be told:\n${r.stdout}`);
    // what is not broken stays ok: host 1's own checks, and the stopped volume's options
    assert.ok(lines.some((l) => l.startsWith(`ok      ${hv1}: qemu-owner: volume ${stopped.name}'s`)), r.stdout);
    assert.deepEqual(lines.filter((l) => l.startsWith("FAILURE")).length, 5, r.stdout);
    assert.match(lines[lines.length - 1], /^\d+ ok, \d+ warning\(s\), 5 failure\(s\)$/);
  });

  test("bad usage: exit 2 with the usage", async () => {
    const r = await doctor(["--volume", "x"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--volume needs --gluster-host/);
    assert.match(r.stderr, /usage: gluster-libvirt doctor/);
  });
});

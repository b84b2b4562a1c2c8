import { test } from "node:test";
import assert from "node:assert/strict";
import { doctorPlan, parseDoctorArgs, summarize, targetsOfDeployment, UsageError, type Deployment } from "../../sdk/doctor";
import { formatResult } from "../../provider/doctor";

test("doctor flags: hosts and volumes add up, connection flags become the defaults the resources read", () => {
  const args = parseDoctorArgs(["--host", "kvm1", "--host=kvm2", "--port", "2222", "--user", "admin", "-i", "~/.ssh/k", "--known-hosts", "/kh",
    "--libvirt-uri", "qemu+ssh://x/system", "--sudo", "--gluster-host", "gs1", "--gluster-user", "root", "--volume", "images", "--json"]);
  assert.deepEqual(args.hosts, ["kvm1", "kvm2"]);
  assert.deepEqual(args.volumes, ["images"]);
  assert.deepEqual(args.defaults, { port: 2222, user: "admin", privateKeyPath: "~/.ssh/k", knownHostsFile: "/kh", libvirtUri: "qemu+ssh://x/system", sudo: true });
  assert.equal(args.json, true);
  const { plan } = doctorPlan(args);
  assert.deepEqual(plan.hypervisors, [{ host: "kvm1" }, { host: "kvm2" }]);
  assert.deepEqual(plan.gluster, { host: "gs1", user: "root", sudo: false }, "a root login needs no sudo");
  assert.deepEqual(doctorPlan(parseDoctorArgs(["--gluster-host", "gs1", "--volume", "v"])).plan.gluster, { host: "gs1", sudo: true }, "otherwise the gluster CLI runs through sudo");
});

test("doctor flags: bad usage names the flag", () => {
  for (const [argv, said] of [
    [["--host"], /--host needs a value/],
    [["--host", "--volume"], /--host needs a value/],
    [["--port", "x", "--host", "h"], /--port: expected a number/],
    [["--frobnicate"], /unknown option "--frobnicate"/],
    [[], /name what to check/],
    [["--volume", "v"], /--volume needs --gluster-host/],
    [["--stack", "dev", "--host", "h"], /--stack needs --stack-dir/],
  ] as const) {
    assert.throws(() => parseDoctorArgs(argv), (e: unknown) => e instanceof UsageError && said.test((e as Error).message), argv.join(" "));
  }
});

test("a stack directory: gluster-libvirt:* config as defaults (flags win), hosts and volumes from the deployed resources", () => {
  const deployment: Deployment = {
    deployment: {
      resources: [
        { type: "pulumi:pulumi:Stack", outputs: {} },
        { type: "pulumi-nodejs:dynamic/gluster-libvirt:GlusterVolume", outputs: { name: "images", connection: { host: "gs1", sudo: true } } },
        { type: "pulumi-nodejs:dynamic/gluster-libvirt:GlusterPool", outputs: { volume: "images", connection: { host: "kvm1", port: 2200 } } },
        // a connection carrying a key is a secret: `stack export --show-secrets` gives its plaintext
        { type: "pulumi-nodejs:dynamic/gluster-libvirt:GlusterPool", outputs: { volume: "images", connection: { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify({ host: "kvm2", privateKey: "k" }) } } },
        { type: "pulumi-nodejs:dynamic/gluster-libvirt:ImageVolume", outputs: { pool: "images", connection: { host: "kvm1" } } },
      ],
    },
  };
  assert.deepEqual(targetsOfDeployment(deployment), {
    hypervisors: [{ host: "kvm1", port: 2200 }, { host: "kvm2", privateKey: "k" }],
    gluster: { host: "gs1", sudo: true },
    volumes: ["images"],
  });
  const config = { "gluster-libvirt:user": { value: "gllab" }, "gluster-libvirt:port": { value: "2222" }, "gluster-full-stack:vm": { value: "vm1" } };
  const { defaults, plan } = doctorPlan(parseDoctorArgs(["--stack-dir", ".", "--port", "22", "--host", "kvm3", "--host", "kvm1"]), { config, deployment });
  assert.deepEqual(defaults, { user: "gllab", port: 22 });
  assert.deepEqual(plan.hypervisors.map((h) => (h as { host: string }).host), ["kvm1", "kvm2", "kvm3"], "kvm1 once, with the connection its resources use");
  assert.deepEqual(plan.volumes, ["images"]);
  assert.deepEqual(plan.gluster, { host: "gs1", sudo: true });
});

test("one line per result, the subject once, the fix on failures and warnings", () => {
  const line = formatResult({ subject: "volume v", check: "allow-insecure", status: "failure", message: "volume v: server.allow-insecure is off", fix: "gluster volume set v server.allow-insecure on" });
  assert.equal(line, "FAILURE volume v: allow-insecure: server.allow-insecure is off — fix: gluster volume set v server.allow-insecure on");
  assert.equal(formatResult({ subject: "hypervisor u@h:22", check: "ssh", status: "ok", message: "reachable", fix: "x" }), "ok      hypervisor u@h:22: ssh: reachable");
  assert.equal(formatResult({ subject: "hypervisor u@h:22", check: "gluster-reachable", status: "ok", message: "u@h:22 reaches a:24007" }), "ok      hypervisor u@h:22: gluster-reachable: u@h:22 reaches a:24007");
  assert.deepEqual(summarize([{ subject: "s", check: "ssh", status: "ok", message: "" }, { subject: "s", check: "virsh", status: "failure", message: "" }]), { ok: 1, warning: 0, failure: 1 });
});

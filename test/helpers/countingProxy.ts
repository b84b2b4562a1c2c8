/**
 * A TCP proxy in front of the lab's sshd that counts the connections made through it: how
 * tests and benchmarks see how many SSH connections a Pulumi run opened (the provider runs
 * in the engine's process, out of the test's reach). Host keys are still verified
 * strictly: `knownHostsFile` names the lab's key under the proxy's address.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import type { LabInfo } from "./lab";

export interface CountingProxy {
  /** 127.0.0.1:port reaches the lab's sshd */
  port: number;
  knownHostsFile: string;
  /** connections accepted so far */
  readonly connections: number;
  close(): void;
}

export async function startCountingProxy(lab: LabInfo): Promise<CountingProxy> {
  let connections = 0;
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(lab.ssh.port, lab.ssh.host);
    client.pipe(upstream).pipe(client);
    const close = () => (client.destroy(), upstream.destroy());
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "counting-proxy-"));
  const knownHostsFile = path.join(dir, "known_hosts");
  const entry = `[${lab.ssh.host}]:${lab.ssh.port} `;
  const line = fs.readFileSync(lab.ssh.knownHostsFile, "utf8").split("\n").find((l) => l.startsWith(entry));
  if (!line) throw new Error(`${lab.ssh.knownHostsFile} has no line for ${entry.trim()}`);
  fs.writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${line.slice(entry.length)}\n`);
  return {
    port,
    knownHostsFile,
    get connections() {
      return connections;
    },
    close() {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

import * as pulumi from "@pulumi/pulumi";
import { DiskAttachment, GlusterPool, ImageVolume } from "pulumi-gluster-libvirt";
import { parseLayout, type Layout } from "./layout";

// The whole storage layout lives in Pulumi.<stack>.yaml as data (see README); this
// program only turns it into resources. Every resource is named after its place in
// the layout, so editing one entry touches exactly that resource.
function readLayout(): Layout {
  try {
    return parseLayout(`${pulumi.getProject()}:layout`, new pulumi.Config().requireObject("layout"));
  } catch (e) {
    throw new pulumi.RunError((e as Error).message); // the message, without a stack trace
  }
}

for (const [host, { pools, disks }] of Object.entries(readLayout().hosts)) {
  const connection = { host };
  const volumes = new Map<string, ImageVolume>(); // "POOL/IMAGE" → volume
  for (const [poolName, { images, ...poolArgs }] of Object.entries(pools)) {
    const pool = new GlusterPool(`${host}/${poolName}`, { connection, name: poolName, ...poolArgs });
    // a linked clone is declared after its backing image, whatever the YAML's order
    const declare = (imageName: string, chain: string[] = []): ImageVolume => {
      const key = `${poolName}/${imageName}`;
      const known = volumes.get(key);
      if (known) return known;
      if (chain.includes(imageName)) throw new pulumi.RunError(`layout: backing images form a cycle: ${[...chain, imageName].join(" → ")}`);
      const { backing, ...imageArgs } = images[imageName];
      const base = backing === undefined ? undefined : declare(backing, [...chain, imageName]);
      const volume = new ImageVolume(`${host}/${key}`, {
        connection,
        pool: pool.name,
        name: imageName,
        ...imageArgs,
        ...(base ? { backingVolume: { volume: base.name } } : {}),
      });
      volumes.set(key, volume);
      return volume;
    };
    Object.keys(images).forEach((imageName) => declare(imageName));
  }
  for (const [vm, targets] of Object.entries(disks)) {
    for (const [target, { image, ...diskArgs }] of Object.entries(targets)) {
      const volume = volumes.get(image)!; // checked by parseLayout
      new DiskAttachment(`${host}/${vm}/${target}`, { connection, domain: vm, pool: volume.pool, volume: volume.name, target, ...diskArgs });
    }
  }
}

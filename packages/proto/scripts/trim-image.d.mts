import type { FileDescriptorSet } from '@bufbuild/protobuf/wkt';

/** See trim-image.mjs. */
export function trimDescriptors(input: FileDescriptorSet, opts: { keep: Iterable<string>; services: Iterable<string> }): FileDescriptorSet;

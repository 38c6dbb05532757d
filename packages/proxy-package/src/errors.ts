/**
 * Why a package was refused, as the LEGO agent reports it in its status (`lastError.reason`,
 * `badVersions[].reason`). PascalCase words; part of the AgentStatus contract.
 */
export type PackageReason = 'DigestMismatch' | 'SignatureMissing' | 'SignatureInvalid' | 'ManifestMismatch' | 'DownloadFailed' | 'TooLarge' | 'UnsafeArchive';

/** A package refused (or not obtained) for `reason`; retrying the same bytes cannot succeed, except for DownloadFailed. */
export class PackageError extends Error {
  constructor(
    readonly reason: PackageReason,
    message: string,
  ) {
    super(message);
    this.name = 'PackageError';
  }
}

export const isPackageError = (e: unknown): e is PackageError => e instanceof PackageError;

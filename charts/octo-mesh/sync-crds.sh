#!/usr/bin/env bash
# Copies the generated CRDs (crds/, from packages/api's schemas) into the chart, which renders
# them as templates so `helm upgrade` updates them (helm never upgrades its crds/ directory).
# scripts/chart.test.ts fails when the copies are stale.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rm -f "$here"/files/crds/*.yaml
cp "$here"/../../crds/*.yaml "$here"/files/crds/

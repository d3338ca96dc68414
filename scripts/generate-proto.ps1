# Regenerate src/mxgateway/generated/ from proto/ on Windows (same script CI and `make proto` run).
$ErrorActionPreference = "Stop"
$root = Split-Path -Parent $PSScriptRoot
python (Join-Path $root "scripts/generate_proto.py")
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

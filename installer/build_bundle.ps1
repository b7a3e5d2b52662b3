# The torch-free station frozen with PyInstaller on Windows: dist\inspector\ holds inspector.exe
# (the command line) and inspector-gui.exe (the window, no console). Then the installer:
#   iscc /DAppVersion=0.1.0 installer\windows\inspector.iss   (Inno Setup 6)
# Run from a checkout in PowerShell, with Python 3.11+ from python.org (the "py" launcher):
#   powershell -ExecutionPolicy Bypass -File installer\build_bundle.ps1 [-Wheels DIR] [-Extras gui]
# -Wheels: install the station from a folder made by collect_wheels.sh --platform win_amd64
# (offline); PyInstaller itself still comes from the registry.
param(
    [string]$Wheels = "",
    [string]$Extras = "gui",
    [string]$Dist = "",
    [string]$Work = "",
    [string]$PythonVersion = "3.11",
    [string]$PyInstallerSpec = "pyinstaller>=6.10,<7"
)
$ErrorActionPreference = "Stop"
$Src = (Resolve-Path (Join-Path $PSScriptRoot "..")).Path
if (-not $Dist) { $Dist = Join-Path $Src "dist" }
if (-not $Work) { $Work = Join-Path $Src "build\bundle" }
New-Item -ItemType Directory -Force -Path $Dist, $Work | Out-Null

function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed ($LASTEXITCODE)" }
}

$Venv = Join-Path $Work "venv"
if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv }
Invoke-Checked "py" @("-$PythonVersion", "-m", "venv", $Venv)
$Py = Join-Path $Venv "Scripts\python.exe"
$Want = if ($Extras) { "[$Extras]" } else { "" }
if ($Wheels) {
    Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "--no-index", "--find-links", $Wheels, "inspector$Want")
} else {
    Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "$Src$Want")
}
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", $PyInstallerSpec)
Push-Location $Work  # outside the checkout: the analysis takes the installed package
try {
    Invoke-Checked $Py @("-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath", $Dist,
        "--workpath", (Join-Path $Work "pyinstaller"), (Join-Path $Src "installer\freeze\inspector.spec"))
} finally {
    Pop-Location
}
Write-Host "bundle: $(Join-Path $Dist 'inspector'); smoke test: $(Join-Path $Dist 'inspector\inspector.exe') doctor --headless"

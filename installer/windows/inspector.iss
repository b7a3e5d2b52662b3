; Inno Setup 6.3+ script (x64compatible): the frozen torch-free station (dist\inspector\, from
; installer\build_bundle.ps1) as a Windows installer for a line PC.
;   iscc /DAppVersion=0.1.0 installer\windows\inspector.iss   ->  dist\inspector-setup-0.1.0.exe
; Installs the programs under Program Files, start-menu entries for the window and for doctor,
; and a data directory, %ProgramData%\Inspector, that INSPECTOR_HOME points at (the visual log,
; its pictures and heatmaps, the station's settings). Uninstalling removes the programs and
; keeps the data directory: the visual log is a quality record, removed only on purpose.
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Inspector station"
#define BundleDir "..\..\dist\inspector"

[Setup]
AppId={{6F1C9A52-3B7E-4D52-9C1E-0B8E2A7D4F11}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=inspector
DefaultDirName={autopf}\Inspector
DefaultGroupName=Inspector
OutputDir=..\..\dist
OutputBaseFilename=inspector-setup-{#AppVersion}
Compression=lzma2
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
ChangesEnvironment=yes
UninstallDisplayIcon={app}\inspector-gui.exe
WizardStyle=modern

[Dirs]
; The data directory: operators (Users) write the log; never removed by the uninstaller.
Name: "{commonappdata}\Inspector"; Permissions: users-modify; Flags: uninsneveruninstall
Name: "{commonappdata}\Inspector\inbox"; Permissions: users-modify; Flags: uninsneveruninstall

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Registry]
; Every program and service on this PC finds the log in the data directory.
Root: HKLM; Subkey: "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"; \
  ValueType: expandsz; ValueName: "INSPECTOR_HOME"; ValueData: "{commonappdata}\Inspector"; \
  Flags: uninsdeletevalue

[Icons]
Name: "{group}\Inspector station"; Filename: "{app}\inspector-gui.exe"; WorkingDir: "{commonappdata}\Inspector"
Name: "{group}\Inspector doctor (check this PC)"; Filename: "{cmd}"; \
  Parameters: "/k ""{app}\inspector.exe"" doctor"; WorkingDir: "{commonappdata}\Inspector"
Name: "{group}\Inspector data folder"; Filename: "{commonappdata}\Inspector"
Name: "{group}\Uninstall Inspector"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Inspector station"; Filename: "{app}\inspector-gui.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "A desktop icon for the station"; Flags: unchecked

[Run]
Filename: "{cmd}"; Parameters: "/k ""{app}\inspector.exe"" doctor"; \
  Description: "Check this PC now (inspector doctor)"; Flags: postinstall skipifsilent unchecked nowait

[UninstallDelete]
; Only what the programs leave beside themselves; the data directory is kept (see [Dirs]).
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Messages]
UninstallStatusLabel=Removing the programs. The visual log in %ProgramData%\Inspector is kept.

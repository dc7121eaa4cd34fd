# NixOS module: services.nixpush.enable = true; pushes every store path
# that becomes valid on the machine, as systemd/nixpush.service does.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.nixpush;
  settingsFormat = pkgs.formats.toml { };
  configFile = settingsFormat.generate "nixpush.toml" ({ to = cfg.cacheUrl; } // cfg.settings);
in
{
  options.services.nixpush = {
    enable = lib.mkEnableOption "nixpush, pushing new store paths to a binary cache";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      description = "The nixpush package to use.";
    };

    cacheUrl = lib.mkOption {
      type = lib.types.str;
      example = "s3://nix-cache?region=eu-west-1";
      description = "Cache URL, as given to `nix copy --to`.";
    };

    signingKeyFile = lib.mkOption {
      type = lib.types.path;
      example = "/run/keys/nixpush.sec";
      description = "Secret key (nix-store --generate-binary-cache-key format); passed as a systemd credential, never copied to the store.";
    };

    tokenFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "Bearer token for an HTTP(S) cache, passed as a systemd credential.";
    };

    settings = lib.mkOption {
      type = settingsFormat.type;
      default = { };
      example = { exclude = [ "-source$" ]; "watch-store" = { metrics-addr = "9464"; }; };
      description = "Extra settings: any nixpush flag name as key (see `nixpush config check`).";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = [ cfg.package ];
    environment.etc."nixpush/config.toml".source = configFile;

    systemd.services.nixpush = {
      description = "nixpush: push new Nix store paths to a binary cache";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" "nix-daemon.service" ];
      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = lib.concatStringsSep " " ([
          "${cfg.package}/bin/nixpush watch-store"
          "--config /etc/nixpush/config.toml"
          "--state-dir \${STATE_DIRECTORY}"
          "--signing-key \${CREDENTIALS_DIRECTORY}/signing-key"
        ] ++ lib.optional (cfg.tokenFile != null) "--token-file \${CREDENTIALS_DIRECTORY}/token");
        LoadCredential = [ "signing-key:${cfg.signingKeyFile}" ]
          ++ lib.optional (cfg.tokenFile != null) "token:${cfg.tokenFile}";
        Restart = "on-failure";
        RestartPreventExitStatus = "2 78";
        RestartSec = "5s";
        WatchdogSec = "2min";
        TimeoutStopSec = "45s";
        StateDirectory = "nixpush";
        StateDirectoryMode = "0700";
        ProtectSystem = "strict";
        ReadOnlyPaths = [ "/nix/store" "/nix/var/nix/db" ];
        ReadWritePaths = lib.optional (lib.hasPrefix "file://" cfg.cacheUrl)
          (builtins.head (lib.splitString "?" (lib.removePrefix "file://" cfg.cacheUrl)));
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        UMask = "0022";
      };
    };
  };
}

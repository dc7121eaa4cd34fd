# nixpush for Nix users: nix-build nix/ (or callPackage ./nix/package.nix {}).
{ lib, buildGoModule, sqlite, xz }:

buildGoModule {
  pname = "nixpush";
  version = "0.1.0";
  src = lib.cleanSource ./..;
  # Update after changing go.mod: build once with lib.fakeHash and copy the
  # hash Nix reports.
  vendorHash = lib.fakeHash;
  subPackages = [ "cmd/nixpush" ];
  # mattn/go-sqlite3 and xz compression (liblzma, as in Nix) need cgo.
  env.CGO_ENABLED = "1";
  buildInputs = [ sqlite xz ];
  ldflags = [ "-s" "-w" ];
  # The test suite drives real Nix, nginx and an S3 server: run it with
  # `make test` outside the sandbox.
  doCheck = false;
  postInstall = ''
    install -Dm444 systemd/nixpush.service $out/lib/systemd/system/nixpush.service
    substituteInPlace $out/lib/systemd/system/nixpush.service \
      --replace-fail /usr/local/bin/nixpush $out/bin/nixpush
  '';
  meta = {
    description = "Push every Nix store path your machines build to a binary cache";
    license = lib.licenses.mit;
    mainProgram = "nixpush";
    platforms = lib.platforms.linux;
  };
}

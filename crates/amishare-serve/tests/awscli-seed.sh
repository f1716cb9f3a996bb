#!/usr/bin/env bash
# The seed flow, driven with the stock `aws` command line client against
# `amishare sim serve` serving testdata/worlds/seed.json, as two accounts:
# a-admin of 111111111111 shares an encrypted image with b-user of
# 222222222222, who launches it. A client nobody here wrote parses every
# answer; each output is checked with --query and --output text.
#
# Environment:
#   AMISHARE_ENDPOINT   the server's URL (http://127.0.0.1:PORT), serving a
#                       fresh copy of testdata/worlds/seed.json; or leave it
#                       unset and set
#   AMISHARE_SERVE      the serve command, words split on spaces (e.g.
#                       `target/debug/amishare sim serve`): the script then serves a temporary
#                       copy of the seed world itself, stops the server at the end
#                       and checks that the saved world kept the state.
#   AMISHARE_BIN        the amishare command, whose `amishare policy` writes
#                       the key policy the script puts (default: the first word
#                       of AMISHARE_SERVE).
#   AWS_CLI             the aws binary (default: aws), e.g. a venv's
#                       (python3 -m venv V && V/bin/pip install awscli).
#   AMISHARE_OWNER_KEY, AMISHARE_TARGET_KEY
#                       access key IDs of the two principals (default: the
#                       seed world's).
#
# `cargo xtask e2e` runs it with a pinned awscli against `amishare sim serve`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
owner_arn=arn:aws:iam::111111111111:user/a-admin
target_arn=arn:aws:iam::222222222222:user/b-user
seed_policy=$here/data/seed-key-policy.json

source "$here/awscli-common.sh"

amishare_bin=${AMISHARE_BIN:-}
if [[ -z "$amishare_bin" && -n "${AMISHARE_SERVE:-}" ]]; then
    read -r -a serve_words <<<"$AMISHARE_SERVE"
    amishare_bin=${serve_words[0]}
fi
[[ -n "$amishare_bin" ]] || fail "set AMISHARE_BIN to the amishare command (or AMISHARE_SERVE)"

# ------------------------------------------------------------------ server

start_server

# ------------------------------------------------------------------ callers

check "owner identity" "$(owner sts get-caller-identity --query Arn)" "$owner_arn"
check "target identity" "$(target sts get-caller-identity --query Arn)" "$target_arn"
check "target account" "$(target sts get-caller-identity --query Account)" "$target_account"
expect_error "an unknown access key" InvalidClientTokenId \
    aws_as AKIANOSUCHKEYEXAMPLE sts get-caller-identity
check "the seeded instance" \
    "$(owner ec2 describe-instances --instance-ids "$seed_instance" \
        --query 'Reservations[0].[OwnerId,Instances[0].State.Name]')" \
    "$owner_account	running"

# ------------------------------------------------------------------ owner: key

key_arn=$(owner kms create-key --description "amishare seed key" --query KeyMetadata.Arn)
key_id=${key_arn##*/}
check "key ARN" "$key_arn" "arn:aws:kms:$region:$owner_account:key/$key_id"
owner kms create-alias --alias-name alias/cross-ami --target-key-id "$key_id"
check "key by alias" \
    "$(owner kms describe-key --key-id alias/cross-ami --query 'KeyMetadata.[Arn,KeyManager,KeyState]')" \
    "$key_arn	CUSTOMER	Enabled"

# ------------------------------------------------------------------ owner: image

image=$(owner ec2 create-image --instance-id "$seed_instance" --name seed-golden \
    --tag-specifications "ResourceType=image,Tags=[{Key=amishare:source-instance,Value=$seed_instance}]" \
    --query ImageId)
wait_for "image $image" available failed \
    owner ec2 describe-images --image-ids "$image" --query 'Images[0].State'
check "image tag" \
    "$(owner ec2 describe-images --filters Name=tag:amishare:source-instance,Values="$seed_instance" --query 'Images[].ImageId')" \
    "$image"

copy=$(owner ec2 copy-image --source-image-id "$image" --source-region $region \
    --name seed-golden-encrypted --encrypted --kms-key-id "$key_arn" --query ImageId)
wait_for "copy $copy" available failed \
    owner ec2 describe-images --image-ids "$copy" --query 'Images[0].State'
# 320 s of simulated copy take about 3 s at the default time scale: a client
# that polls sees the copy pending first.
check "states of the copy seen by polling" "$seen" "pending available"
# The waiter of the aws CLI parses the same answer (and returns at once).
owner ec2 wait image-available --image-ids "$copy"
check "copy source" \
    "$(owner ec2 describe-images --image-ids "$copy" --query 'Images[0].[SourceImageId,OwnerId]')" \
    "$image	$owner_account"

snapshots=$(owner ec2 describe-images --image-ids "$copy" \
    --query 'Images[0].BlockDeviceMappings[].Ebs.SnapshotId')
[[ -n "$snapshots" ]] || fail "the copy has no snapshots"
for snapshot in $snapshots; do
    check "snapshot $snapshot key" \
        "$(owner ec2 describe-snapshots --snapshot-ids "$snapshot" --query 'Snapshots[0].[Encrypted,KmsKeyId,State]')" \
        "True	$key_arn	completed"
done

# ------------------------------------------------------------------ before sharing

expect_error "target describes the copy before it is shared" InvalidAMIID.NotFound \
    target ec2 describe-images --image-ids "$copy"

# ------------------------------------------------------------------ owner: share

owner ec2 modify-image-attribute --image-id "$copy" \
    --launch-permission "Add=[{UserId=$target_account}]"
check "launch permission" \
    "$(owner ec2 describe-image-attribute --image-id "$copy" --attribute launchPermission --query 'LaunchPermissions[].UserId')" \
    "$target_account"
for snapshot in $snapshots; do
    owner ec2 modify-snapshot-attribute --snapshot-id "$snapshot" \
        --attribute createVolumePermission --operation-type add --user-ids "$target_account"
    check "create-volume permission of $snapshot" \
        "$(owner ec2 describe-snapshot-attribute --snapshot-id "$snapshot" --attribute createVolumePermission --query 'CreateVolumePermissions[].UserId')" \
        "$target_account"
done

# ------------------------------------------------------------------ target, before the key policy

check "target sees the shared copy" \
    "$(target ec2 describe-images --image-ids "$copy" --query 'Images[0].[State,OwnerId]')" \
    "available	$owner_account"
check "target finds it among the images it may launch" \
    "$(target ec2 describe-images --executable-users self --query 'Images[].ImageId')" \
    "$copy"
expect_error "target describes the key before the key policy allows it" AccessDeniedException \
    target kms describe-key --key-id "$key_arn"
doomed=$(target ec2 run-instances --image-id "$copy" --instance-type t3.micro --query 'Instances[0].InstanceId')
wait_for "instance $doomed launched before the key policy" terminated running \
    target ec2 describe-instances --instance-ids "$doomed" --query 'Reservations[0].Instances[0].State.Name'
check "why $doomed terminated" \
    "$(target ec2 describe-instances --instance-ids "$doomed" --query 'Reservations[0].Instances[0].StateReason.[Code,Message]')" \
    "Client.InternalError	Client.InternalError: Client error on launch"

# ------------------------------------------------------------------ owner: key policy

# The whole key policy as `amishare policy` prints it, put as it is.
policy_file=$(mktemp)
"$amishare_bin" policy --principal "$target_arn" --owner-account "$owner_account" >"$policy_file"
check "amishare policy prints the seed's key policy" \
    "$(diff "$seed_policy" "$policy_file" >&2 && echo same)" same
owner kms put-key-policy --key-id "$key_id" --policy-name default --policy "file://$policy_file"
rm -f "$policy_file"
check "key policy statements" \
    "$(owner kms get-key-policy --key-id "$key_arn" --policy-name default --query Policy --output json \
        | grep -o 'amishare: Allow [a-z ]*' | sort | tr '\n' ';')" \
    "amishare: Allow attachment of persistent resources;amishare: Allow use of the key;"

# ------------------------------------------------------------------ target, after the key policy

check "target describes the key by ARN" \
    "$(target kms describe-key --key-id "$key_arn" --query 'KeyMetadata.[Arn,KeyState]')" \
    "$key_arn	Enabled"
instance=$(target ec2 run-instances --image-id "$copy" --instance-type t3.micro --query 'Instances[0].InstanceId')
wait_for "instance $instance" running terminated \
    target ec2 describe-instances --instance-ids "$instance" --query 'Reservations[0].Instances[0].State.Name'
target ec2 wait instance-running --instance-ids "$instance"
check "the instance's volumes are encrypted" \
    "$(target ec2 describe-volumes --filters Name=attachment.instance-id,Values="$instance" --query 'Volumes[].Encrypted' | tr '\t' '\n' | sort -u)" \
    "True"
check "the instance belongs to the target" \
    "$(target ec2 describe-instances --instance-ids "$instance" --query 'Reservations[0].OwnerId')" \
    "$target_account"
check "terminating it" \
    "$(target ec2 terminate-instances --instance-ids "$instance" --query 'TerminatingInstances[0].[PreviousState.Name,CurrentState.Name]')" \
    "running	shutting-down"

# ------------------------------------------------------------------ DryRun and paging

instances=$(target ec2 describe-instances --query 'length(Reservations)')
expect_error "a dry run of a launch the target may make" DryRunOperation \
    target ec2 run-instances --dry-run --image-id "$copy" --instance-type t3.micro
check "the dry run launched nothing" "$(target ec2 describe-instances --query 'length(Reservations)')" "$instances"
target ec2 run-instances --image-id "$copy" --instance-type t3.micro --count 6 --query 'length(Instances)' >/dev/null
check "one page of five instances" \
    "$(target ec2 describe-instances --no-paginate --max-results 5 --query '[length(Reservations), NextToken != null]')" \
    "5	True"
check "every instance, five a page" \
    "$(target ec2 describe-instances --page-size 5 --query 'Reservations[].Instances[].InstanceId' | wc -w | tr -d ' ')" \
    "$((instances + 6))"

# KMS pages with Limit and Marker; the aws CLI follows NextMarker itself
# (and applies --query to the whole list only with JSON output).
for n in 1 2 3; do
    owner kms create-grant --key-id "$key_arn" --grantee-principal "$target_arn" \
        --operations Decrypt --name "paged-$n" --retiring-principal "$owner_arn" >/dev/null
    owner kms create-alias --alias-name "alias/paged-$n" --target-key-id "$key_id"
    owner kms create-key --description "paged key $n" >/dev/null
done
for list in "list-grants --key-id $key_arn:Grants" \
    "list-retirable-grants --retiring-principal $owner_arn:Grants" \
    "list-aliases:Aliases" "list-keys:Keys"; do
    args=${list%:*}
    member=${list##*:}
    # shellcheck disable=SC2086 # the operation and its arguments, split on spaces
    all=$(owner kms $args --query "length($member)")
    [[ "$all" -ge 3 ]] || fail "kms $args: $all items, expected 3 or more"
    # shellcheck disable=SC2086
    check "kms $args: every item, one a page" \
        "$(owner kms $args --page-size 1 --output json --query "length($member)")" "$all"
    # shellcheck disable=SC2086
    check "kms $args: one page of one" \
        "$(owner kms $args --no-paginate --limit 1 --query "[length($member), Truncated, NextMarker != null]")" \
        "1	True	True"
    # shellcheck disable=SC2086
    check "kms $args: the first two items" \
        "$(owner kms $args --max-items 2 --page-size 1 --output json --query "length($member)")" "2"
    # shellcheck disable=SC2086
    expect_error "kms $args with a marker it never gave" InvalidMarkerException \
        owner kms $args --no-paginate --marker not-a-marker
    # shellcheck disable=SC2086
    expect_error "kms $args with a limit above 1000" ValidationException \
        owner kms $args --no-paginate --limit 1001
done

# ------------------------------------------------------------------ saved state

saved_world_has "the copy and the key" "\"$copy\"" "$key_arn"

echo "awscli seed flow: all $checks checks passed in $((SECONDS - started)) s"

#!/usr/bin/env bash
# Blue/green deployment of a rookery image on one host, with automatic rollback.
#
#   deploy/deploy.sh IMAGE            e.g. deploy/deploy.sh ghcr.io/owner/rookery:sha-abc1234
#
# 1. read the live colour (blue or green) from the state file; the other one is idle
# 2. start IMAGE as the idle colour on its loopback port
# 3. wait until http://HOST:PORT/ready answers 200 (the model is loaded and warmed), at most the timeout
# 4. switch traffic: point the reverse proxy's upstream at the new port and reload the proxy
# 5. record the new live colour, stop the old container
# If the new container never gets ready (or dies, or the switch fails), it is stopped, the old one keeps
# serving, the proxy keeps pointing at it, and the script exits 1 with a loud message: automatic rollback.
#
# A model-only update needs none of this: the app follows a registry alias (models:/rookery@champion) and swaps
# models itself when the alias moves (`rookery model promote` / `rookery model rollback`). Run this script for
# a new image (new code or dependencies).
#
# Environment (defaults in brackets):
#   ROOKERY_DEPLOY_PORTS       "BLUE_PORT GREEN_PORT" on the host's loopback ["8001 8002"]
#   ROOKERY_DEPLOY_STATE       file holding the live colour [${XDG_STATE_HOME:-~/.local/state}/rookery/live]
#   ROOKERY_DEPLOY_TIMEOUT     seconds to wait for /ready [300]
#   ROOKERY_DEPLOY_INTERVAL    seconds between two /ready probes [2]
#   ROOKERY_DEPLOY_HOST        host of the ready probe [127.0.0.1]
#   ROOKERY_DEPLOY_READY_PATH  [/ready]
#   ROOKERY_DEPLOY_DRIVER      executable that replaces the Docker driver below; it is called as
#                                start COLOUR PORT IMAGE | stop COLOUR | running COLOUR | logs COLOUR |
#                                switch COLOUR PORT
#                              (exit 0 on success; `running` exits 0 while the container runs) [built-in docker]
#   ROOKERY_DEPLOY_SSH         user@host: run this script there over ssh, with the ROOKERY_DEPLOY_* variables
#   ROOKERY_DEPLOY_SSH_COMMAND the ssh client [ssh]
# Docker driver only:
#   ROOKERY_DEPLOY_NAME        container name prefix: NAME-blue, NAME-green [rookery]
#   ROOKERY_DEPLOY_ENV_FILE    --env-file for the containers (ROOKERY_TRACKING_URI, secrets...) [none]
#   ROOKERY_DEPLOY_NETWORK     Docker network to join (e.g. the compose stack's, to reach mlflow) [none]
#   ROOKERY_DEPLOY_VOLUME      volume mounted at /data [rookery-data]
#   ROOKERY_DEPLOY_UPSTREAM    nginx file written by `switch` [/etc/nginx/conf.d/rookery-upstream.conf]
#   ROOKERY_DEPLOY_PROXY_RELOAD  command that checks and reloads the proxy [nginx -t && nginx -s reload]
set -euo pipefail

log() { printf '%s deploy: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 2; }

# --- the Docker driver: every container and proxy operation of the default setup -------------------------------
docker_driver() {
    local verb=$1 name
    shift
    name="${ROOKERY_DEPLOY_NAME:-rookery}-${1:-}"
    case $verb in
        start)  # COLOUR PORT IMAGE
            local port=$2 image=$3 args
            docker image inspect "$image" >/dev/null 2>&1 || docker pull "$image"
            # A leftover of an earlier, failed deploy; never the live one (main never starts the live colour).
            [[ $1 != "$(read_live)" ]] || die "refusing to replace $name: the state file $state says it is live"
            docker rm -f "$name" >/dev/null 2>&1 || true
            args=(run --detach --name "$name" --restart unless-stopped --label "rookery.colour=$1"
                  --publish "127.0.0.1:$port:8000" --volume "${ROOKERY_DEPLOY_VOLUME:-rookery-data}:/data")
            if [[ -n ${ROOKERY_DEPLOY_ENV_FILE:-} ]]; then args+=(--env-file "$ROOKERY_DEPLOY_ENV_FILE"); fi
            if [[ -n ${ROOKERY_DEPLOY_NETWORK:-} ]]; then args+=(--network "$ROOKERY_DEPLOY_NETWORK"); fi
            docker "${args[@]}" "$image" >/dev/null
            ;;
        stop)  # COLOUR
            if docker container inspect "$name" >/dev/null 2>&1; then
                docker stop --time 30 "$name" >/dev/null
                docker rm "$name" >/dev/null
            fi
            ;;
        running)  # COLOUR: up, and not restarted by its restart policy (a crash loop counts as dead)
            [[ $(docker container inspect --format '{{.State.Running}} {{.RestartCount}}' "$name" 2>/dev/null) \
                == "true 0" ]]
            ;;
        logs)  # COLOUR
            docker logs --tail 100 "$name" 2>&1
            ;;
        switch)  # COLOUR PORT: point nginx at the new port; put the old file back if the proxy rejects it
            # Called inside `if ! driver switch`, where errexit is off: every step checks its own status, so a
            # file that cannot be written never ends in a reload of the old file reported as a switch.
            local upstream=${ROOKERY_DEPLOY_UPSTREAM:-/etc/nginx/conf.d/rookery-upstream.conf} backup
            backup=$(mktemp) || return 1
            if [[ -f $upstream ]] && ! cp "$upstream" "$backup"; then
                rm -f "$backup"
                return 1
            fi
            if ! printf '# written by deploy/deploy.sh: %s is live\nupstream rookery { server 127.0.0.1:%s; }\n' \
                "$1" "$2" >"$upstream.tmp" || ! mv "$upstream.tmp" "$upstream"; then
                log "could not write $upstream"
                rm -f "$backup" "$upstream.tmp"
                return 1
            fi
            if ! sh -c "${ROOKERY_DEPLOY_PROXY_RELOAD:-nginx -t && nginx -s reload}"; then
                if [[ -s $backup ]]; then cp "$backup" "$upstream" || log "could not put $upstream back"; fi
                rm -f "$backup"
                return 1
            fi
            rm -f "$backup"
            ;;
        *) die "docker driver: unknown operation '$verb'" ;;
    esac
}

# The seam: a test or another platform replaces the Docker driver with ROOKERY_DEPLOY_DRIVER.
driver() {
    if [[ -n ${ROOKERY_DEPLOY_DRIVER:-} ]]; then
        "$ROOKERY_DEPLOY_DRIVER" "$@"
    else
        docker_driver "$@"
    fi
}

# --- steps ----------------------------------------------------------------------------------------------------
probe() {  # PORT: does /ready answer 2xx?
    local url="http://${ROOKERY_DEPLOY_HOST:-127.0.0.1}:$1${ROOKERY_DEPLOY_READY_PATH:-/ready}"
    # Straight to the container's port: never through an HTTP proxy set in the environment.
    if command -v curl >/dev/null; then
        curl --silent --fail --output /dev/null --max-time 5 --noproxy '*' "$url"
    else
        python3 -c 'import sys, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=5)' \
            "$url" 2>/dev/null
    fi
}

wait_ready() {  # COLOUR PORT: 0 when ready; 1 when the container died or the timeout passed
    local deadline=$((SECONDS + ${ROOKERY_DEPLOY_TIMEOUT:-300}))
    while ((SECONDS < deadline)); do
        if probe "$2"; then
            return 0
        fi
        if ! driver running "$1" >/dev/null 2>&1; then
            failure="the $1 container exited before it was ready"
            return 1
        fi
        sleep "${ROOKERY_DEPLOY_INTERVAL:-2}"
    done
    failure="the $1 container was not ready after ${ROOKERY_DEPLOY_TIMEOUT:-300}s"
    return 1
}

rollback() {  # REASON: stop the new container, keep the old one, fail loudly
    {
        printf '\n%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        printf 'DEPLOY FAILED: %s.\n' "$1"
        if [[ -n $live ]]; then
            printf 'ROLLED BACK: %s stays live on port %s and keeps serving; %s (%s) is stopped.\n' \
                "$live" "$(port_of "$live")" "$new" "$image"
        else
            printf 'Nothing was live before; %s (%s) is stopped.\n' "$new" "$image"
        fi
        printf 'Last lines of the %s container:\n' "$new"
    } >&2
    driver logs "$new" 2>&1 | tail -n 40 >&2 || true
    printf '%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    driver stop "$new" || log "could not stop $new: stop it by hand"
    exit 1
}

port_of() { if [[ $1 == blue ]]; then echo "${ports[0]}"; else echo "${ports[1]}"; fi; }

read_live() {
    local colour=""
    if [[ -f $state ]]; then read -r colour <"$state" || true; fi
    case $colour in
        blue | green | "") echo "$colour" ;;
        *) die "state file $state holds '$colour', not blue or green" ;;
    esac
}

write_live() {
    printf '%s\n' "$1" >"$state.tmp"
    mv "$state.tmp" "$state"
}

run_remote() {  # ship this script and the ROOKERY_DEPLOY_* settings to ROOKERY_DEPLOY_SSH and run it there
    local assignments="" name
    for name in "${!ROOKERY_DEPLOY_@}"; do
        case $name in ROOKERY_DEPLOY_SSH | ROOKERY_DEPLOY_SSH_COMMAND) continue ;; esac
        assignments+=" $name=$(printf '%q' "${!name}")"
    done
    log "running on $ROOKERY_DEPLOY_SSH"
    # shellcheck disable=SC2086  # the ssh command may carry options, e.g. "ssh -p 2222"
    exec ${ROOKERY_DEPLOY_SSH_COMMAND:-ssh} "$ROOKERY_DEPLOY_SSH" \
        "env$assignments bash -s -- $(printf '%q' "$1")" <"${BASH_SOURCE[0]}"
}

main() {
    if [[ $# -ne 1 || -z $1 || $1 == -* ]]; then
        die "usage: deploy/deploy.sh IMAGE (see the comments at the top of the script)"
    fi
    image=$1
    if [[ -n ${ROOKERY_DEPLOY_SSH:-} ]]; then
        run_remote "$image"
    fi

    read -r -a ports <<<"${ROOKERY_DEPLOY_PORTS:-8001 8002}"
    if [[ ${#ports[@]} -ne 2 || ${ports[0]} == "${ports[1]}" ]] || ! [[ ${ports[0]}${ports[1]} =~ ^[0-9]+$ ]]; then
        die "ROOKERY_DEPLOY_PORTS must be two different port numbers, e.g. \"8001 8002\""
    fi
    state=${ROOKERY_DEPLOY_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/rookery/live}
    mkdir -p "$(dirname "$state")"

    # One deploy at a time on this host: without the lock two deploys could stop each other's containers.
    command -v flock >/dev/null || die "flock (util-linux) is needed to lock $state.lock; install it"
    exec 9>"$state.lock"
    flock --nonblock 9 || die "another deploy holds $state.lock"

    live=$(read_live)
    if [[ $live == blue ]]; then new=green; else new=blue; fi
    local new_port
    new_port=$(port_of "$new")
    log "live: ${live:-none}; starting $image as $new on port $new_port"

    failure=""
    driver start "$new" "$new_port" "$image" || rollback "the $new container did not start"
    log "waiting for $new to be ready (at most ${ROOKERY_DEPLOY_TIMEOUT:-300}s)"
    wait_ready "$new" "$new_port" || rollback "$failure"

    log "$new is ready; switching traffic to port $new_port"
    if ! driver switch "$new" "$new_port"; then
        # errexit is off in the condition above: the switch reports its own failure, checked here explicitly
        if [[ -n $live ]] && ! driver switch "$live" "$(port_of "$live")"; then
            rollback "the proxy did not switch to $new, and switching it back to $live failed too: check the proxy"
        fi
        rollback "the proxy did not switch to $new"
    fi
    write_live "$new"

    if [[ -n $live ]]; then
        log "stopping $live"
        driver stop "$live" || log "warning: could not stop $live; traffic already goes to $new"
    fi
    log "done: $new is live on port $new_port ($image)"
}

main "$@"

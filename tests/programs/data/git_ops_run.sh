# shellcheck shell=bash
# git_ops_run.sh — the git session of tests/programs/git_ops.sh, run with bash
# in an empty directory.  Fixed names and dates make every hash deterministic;
# everything printed must not depend on timing (pack delta choices made by
# several threads may, so only their object counts are printed).
set -eu
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME="$PWD"
export GIT_AUTHOR_NAME="Ada Author" GIT_AUTHOR_EMAIL=ada@example.org
export GIT_COMMITTER_NAME="Cy Committer" GIT_COMMITTER_EMAIL=cy@example.org
when=1700000000
tick() {
    when=$((when + 60))
    export GIT_AUTHOR_DATE="@$when +0000" GIT_COMMITTER_DATE="@$when +0000"
}

git init -q -b main repo
cd repo
git config pack.threads 2
git config gc.auto 0
tick

# 120 commits over a growing tree: new files, edits to old ones, a rename now and then.
mkdir -p src docs
for i in $(seq 1 120); do
    f=src/file$((i % 37)).txt
    seq $i $((i * 7)) | awk -v i=$i '{ print "line", $1, "of commit", i, substr("abcdefghijklmnop", 1 + $1 % 16) }' >>"$f"
    printf 'note %d\n' $i >"docs/note$((i % 11)).md"
    [ $((i % 25)) -eq 0 ] && git mv -k "src/file$((i % 5)).txt" "src/moved$i.txt"
    git add -A
    tick
    git commit -q -m "commit $i" -m "touches $f"
done

# Two branches: one merges cleanly, the other conflicts and is resolved.
git branch feature HEAD~30
git switch -q feature
for i in $(seq 1 15); do
    echo "feature $i" >"feature$i.txt"; git add "feature$i.txt"; tick; git commit -q -m "feature $i"
done
git switch -q main
tick
git merge -q --no-ff -m "merge feature" feature
git switch -q -c conflict HEAD~5
echo "conflicting text" >src/file9.txt
git commit -q -am "conflict side"
git switch -q main
tick
if git merge -q -m "merge conflict" conflict >/dev/null 2>&1; then
    echo "expected a conflict"; exit 1
fi
git status --short
git checkout --theirs src/file9.txt
git add src/file9.txt
tick
git commit -q --no-edit
git tag -a v1 -m "tag v1"

echo "== log"
git log --graph --format='%h %an %ad %s' --date=iso-strict | head -n 60
git log --stat --format='%H %s' -n 20
git rev-list --count --all
echo "== diff / blame"
git diff --stat HEAD~40 HEAD
git diff HEAD~3 HEAD | sha256sum
git blame -s src/file7.txt | tail -n 5
echo "== objects"
git rev-list --objects --all | sort | sha256sum
git cat-file --batch-all-objects --batch-check | sort | sha256sum
echo "== gc / fsck"
git gc -q --aggressive --prune=now
git count-objects -v | grep -E '^(count|in-pack|packs|prune-packable|garbage):'
git fsck --full --strict --no-progress
git verify-pack "$(ls .git/objects/pack/*.idx)" && echo verify-pack ok
echo "== clone / archive"
cd ..
git clone -q --no-local repo clone
git -C clone log --format='%H' | sha256sum
git -C clone fsck --full --no-progress
git -C repo archive --format=tar v1 | tar -t | sort | sha256sum
git -C repo archive --format=tar v1 | sha256sum
echo "== done"

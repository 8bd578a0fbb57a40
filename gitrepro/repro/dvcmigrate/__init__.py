"""Coming from DVC: `gitrepro migrate dvc` (migrate) turns a DVC project — dvc.yaml stages, .dvc
files, dvc.lock and the data in DVC's cache — into gitrepro stages, snapshots, pointers and
imported run records, as one change the user reviews and commits; and `gitrepro checkout` of a
commit from before the migration restores its data from DVC's cache or directory remote
(restore). dvcfiles reads DVC's files (pure), dvccache reads DVC's content-addressed objects.
See docs/dvc.md.
"""

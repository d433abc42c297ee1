"""The wheel side: read and write wheels (archive), build them (build, sdist), vendor libraries with auditwheel
(auditwheel), and set their RPATHs for every install scheme (set_rpaths)."""

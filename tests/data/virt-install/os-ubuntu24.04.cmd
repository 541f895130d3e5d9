virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-ubuntu24.04 --memory 512 --osinfo ubuntu-lts-latest --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2

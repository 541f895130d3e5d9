virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-alpine --memory 512 --osinfo alpinelinux3.17 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2

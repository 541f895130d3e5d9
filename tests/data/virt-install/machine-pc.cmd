virt-install --connect qemu:///session --print-xml 1 --dry-run --name machine-pc --memory 512 --osinfo generic --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2 --machine pc
